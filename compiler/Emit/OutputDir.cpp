//===- OutputDir.cpp - write the generated project atomically ------------===//
//
// A failed run must leave no partial folder: the files go to a temporary
// sibling, which replaces the target only once every file is written.
//
//===----------------------------------------------------------------------===//
#include "Emit/Emitter.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace autotpc;

bool autotpc::writeOutputDir(llvm::StringRef Dir, const std::vector<EmittedFile> &Files, DiagEngine &Diags) {
  llvm::SmallString<256> Abs(Dir);
  llvm::sys::fs::make_absolute(Abs);
  llvm::sys::path::remove_dots(Abs, true);
  llvm::StringRef Parent = llvm::sys::path::parent_path(Abs);
  if (!Parent.empty() && !llvm::sys::fs::is_directory(Parent)) {
    if (std::error_code EC = llvm::sys::fs::create_directories(Parent)) {
      Diags.error(Loc::inFile(Dir), "cannot create folder '" + Parent + "': " + EC.message());
      return false;
    }
  }
  llvm::SmallString<256> Tmp;
  std::string Model = (llvm::sys::path::filename(Abs) + ".autotpc-tmp-%%%%%%").str();
  llvm::SmallString<256> Pattern(Parent);
  llvm::sys::path::append(Pattern, Model);
  if (std::error_code EC = llvm::sys::fs::createUniqueDirectory(Pattern, Tmp)) {
    Diags.error(Loc::inFile(Dir), "cannot create a temporary folder beside '" + Dir + "': " + EC.message());
    return false;
  }
  auto Fail = [&](const llvm::Twine &Msg) {
    llvm::sys::fs::remove_directories(Tmp);
    Diags.error(Loc::inFile(Dir), Msg);
    return false;
  };
  for (const EmittedFile &F : Files) {
    llvm::SmallString<256> Path(Tmp);
    llvm::sys::path::append(Path, F.Name);
    std::error_code EC;
    llvm::raw_fd_ostream OS(Path, EC);
    if (EC)
      return Fail("cannot write '" + F.Name + "': " + EC.message());
    OS << F.Text;
    OS.close();
    if (OS.has_error())
      return Fail("cannot write '" + F.Name + "': " + OS.error().message());
  }
  // Replace the old folder: move it aside, move the new one in, drop the old.
  llvm::SmallString<256> Old;
  if (llvm::sys::fs::exists(Abs)) {
    if (!llvm::sys::fs::is_directory(Abs))
      return Fail("'" + Dir + "' exists and is not a folder");
    Old = Tmp;
    Old += ".old";
    if (std::error_code EC = llvm::sys::fs::rename(Abs, Old))
      return Fail("cannot replace '" + Dir + "': " + EC.message());
  }
  if (std::error_code EC = llvm::sys::fs::rename(Tmp, Abs)) {
    if (!Old.empty())
      llvm::sys::fs::rename(Old, Abs);
    return Fail("cannot move the output into '" + Dir + "': " + EC.message());
  }
  if (!Old.empty())
    llvm::sys::fs::remove_directories(Old);
  return true;
}
