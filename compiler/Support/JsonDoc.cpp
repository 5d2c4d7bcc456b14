//===- JsonDoc.cpp - a JSON file with the source range of every value ---===//
//
// The scanner runs only on text that nlohmann already accepted, so it can be
// small: it only has to find where each value and key starts and ends.
//
//===----------------------------------------------------------------------===//
#include "Support/JsonDoc.h"

#include "llvm/Support/MemoryBuffer.h"

using namespace autotpc;

namespace autotpc {

/// Walks valid JSON text and fills a JsonDoc's location index.
class JsonLocationScanner {
public:
  JsonLocationScanner(JsonDoc &Doc, llvm::StringRef Text, DiagEngine &Diags)
      : Doc(Doc), Text(Text), Diags(Diags) {}

  bool run() {
    skipSpace();
    size_t Begin = Pos;
    if (!value("", 0))
      return false;
    Doc.Index[""] = {range(Begin, Begin), range(Begin, Pos)};
    return Ok;
  }

private:
  static constexpr unsigned MaxDepth = 512;

  llvm::SMRange range(size_t B, size_t E) const {
    return {llvm::SMLoc::getFromPointer(Text.data() + B), llvm::SMLoc::getFromPointer(Text.data() + E)};
  }
  void skipSpace() {
    while (Pos < Text.size() && (Text[Pos] == ' ' || Text[Pos] == '\t' || Text[Pos] == '\n' || Text[Pos] == '\r'))
      ++Pos;
  }
  static void appendUtf8(std::string &Out, uint32_t C) {
    if (C < 0x80) {
      Out += char(C);
    } else if (C < 0x800) {
      Out += char(0xC0 | (C >> 6));
      Out += char(0x80 | (C & 0x3F));
    } else if (C < 0x10000) {
      Out += char(0xE0 | (C >> 12));
      Out += char(0x80 | ((C >> 6) & 0x3F));
      Out += char(0x80 | (C & 0x3F));
    } else {
      Out += char(0xF0 | (C >> 18));
      Out += char(0x80 | ((C >> 12) & 0x3F));
      Out += char(0x80 | ((C >> 6) & 0x3F));
      Out += char(0x80 | (C & 0x3F));
    }
  }
  uint32_t hex4() {
    uint32_t V = 0;
    for (int I = 0; I < 4 && Pos < Text.size(); ++I, ++Pos) {
      char C = Text[Pos];
      V = V * 16 + (C <= '9' ? C - '0' : (C | 0x20) - 'a' + 10);
    }
    return V;
  }
  /// Reads a string token starting at '"' and returns its decoded contents.
  std::string string() {
    std::string Out;
    ++Pos; // opening quote
    while (Pos < Text.size() && Text[Pos] != '"') {
      char C = Text[Pos++];
      if (C != '\\') {
        Out += C;
        continue;
      }
      char E = Text[Pos++];
      switch (E) {
      case 'n': Out += '\n'; break;
      case 't': Out += '\t'; break;
      case 'r': Out += '\r'; break;
      case 'b': Out += '\b'; break;
      case 'f': Out += '\f'; break;
      case 'u': {
        uint32_t C1 = hex4();
        if (C1 >= 0xD800 && C1 < 0xDC00 && Text.substr(Pos, 2) == "\\u") {
          Pos += 2;
          uint32_t C2 = hex4();
          C1 = 0x10000 + ((C1 - 0xD800) << 10) + (C2 - 0xDC00);
        }
        appendUtf8(Out, C1);
        break;
      }
      default: Out += E; break; // \" \\ \/
      }
    }
    ++Pos; // closing quote
    return Out;
  }
  bool value(const std::string &Ptr, unsigned Depth) {
    if (Depth > MaxDepth) {
      Diags.error(Loc(range(Pos, Pos + 1)), "JSON nesting is deeper than " + llvm::Twine(MaxDepth) + " levels");
      Ok = false;
      return false;
    }
    char C = Text[Pos];
    if (C == '{')
      return object(Ptr, Depth);
    if (C == '[')
      return array(Ptr, Depth);
    if (C == '"') {
      string();
      return true;
    }
    while (Pos < Text.size() && !llvm::StringRef(",]} \t\r\n").contains(Text[Pos]))
      ++Pos;
    return true;
  }
  bool object(const std::string &Ptr, unsigned Depth) {
    ++Pos;
    auto &Keys = Doc.Members[Ptr];
    llvm::StringMap<size_t> Seen;
    skipSpace();
    while (Text[Pos] != '}') {
      size_t KeyBegin = Pos;
      std::string Key = string();
      size_t KeyEnd = Pos;
      skipSpace();
      ++Pos; // ':'
      skipSpace();
      size_t ValBegin = Pos;
      std::string Child = JsonDoc::child(Ptr, Key);
      if (!value(Child, Depth + 1))
        return false;
      auto [It, Fresh] = Seen.try_emplace(Key, KeyBegin);
      if (!Fresh) {
        Diags.error(Loc(range(KeyBegin, KeyEnd)), "duplicate key '" + Key + "'");
        Diags.note(Loc(range(It->second, It->second + Key.size() + 2)), "first defined here");
        Ok = false;
      } else {
        Keys.push_back(Key);
        Doc.Index[Child] = {range(KeyBegin, KeyEnd), range(ValBegin, Pos)};
      }
      skipSpace();
      if (Text[Pos] == ',') {
        ++Pos;
        skipSpace();
      }
    }
    ++Pos;
    return true;
  }
  bool array(const std::string &Ptr, unsigned Depth) {
    ++Pos;
    skipSpace();
    for (size_t I = 0; Text[Pos] != ']'; ++I) {
      size_t ValBegin = Pos;
      std::string Child = JsonDoc::child(Ptr, I);
      if (!value(Child, Depth + 1))
        return false;
      Doc.Index[Child] = {range(ValBegin, ValBegin), range(ValBegin, Pos)};
      skipSpace();
      if (Text[Pos] == ',') {
        ++Pos;
        skipSpace();
      }
    }
    ++Pos;
    return true;
  }

  JsonDoc &Doc;
  llvm::StringRef Text;
  DiagEngine &Diags;
  size_t Pos = 0;
  bool Ok = true;
};

} // namespace autotpc

/// Turns nlohmann's "[json.exception.parse_error.101] parse error at line 3,
/// column 5: syntax error while parsing ..." into the part after the position.
static std::string cleanParseMessage(const std::string &What) {
  size_t Colon = What.find(": ");
  return Colon == std::string::npos ? What : What.substr(Colon + 2);
}

std::unique_ptr<JsonDoc> JsonDoc::parse(DiagEngine &Diags, unsigned BufID) {
  auto Doc = std::make_unique<JsonDoc>();
  const llvm::MemoryBuffer *Buf = Diags.sourceMgr().getMemoryBuffer(BufID);
  llvm::StringRef Text = Buf->getBuffer();
  Doc->Name = Buf->getBufferIdentifier().str();
  Doc->BufID = BufID;
  Doc->Start = llvm::SMLoc::getFromPointer(Text.data());
  try {
    Doc->Root = nlohmann::json::parse(Text.begin(), Text.end());
  } catch (const nlohmann::json::parse_error &E) {
    // E.byte is 1-based and may point one past the end.
    size_t Off = E.byte ? std::min<size_t>(E.byte - 1, Text.size()) : 0;
    llvm::SMLoc L = llvm::SMLoc::getFromPointer(Text.data() + Off);
    Diags.error(Loc(llvm::SMRange(L, L)), "invalid JSON: " + cleanParseMessage(E.what()));
    return nullptr;
  } catch (const nlohmann::json::exception &E) {
    Diags.error(Loc::inFile(Doc->Name), "invalid JSON: " + cleanParseMessage(E.what()));
    return nullptr;
  }
  JsonLocationScanner Scanner(*Doc, Text, Diags);
  if (!Scanner.run())
    return nullptr;
  return Doc;
}

std::unique_ptr<JsonDoc> JsonDoc::load(DiagEngine &Diags, llvm::StringRef Path, llvm::StringRef DisplayName) {
  auto BufOr = llvm::MemoryBuffer::getFile(Path, /*IsText=*/true);
  if (!BufOr) {
    Diags.error(Loc::inFile(DisplayName), "cannot read file: " + BufOr.getError().message());
    return nullptr;
  }
  auto Buf = llvm::MemoryBuffer::getMemBufferCopy((*BufOr)->getBuffer(), DisplayName);
  unsigned ID = Diags.sourceMgr().AddNewSourceBuffer(std::move(Buf), llvm::SMLoc());
  return parse(Diags, ID);
}

const nlohmann::json *JsonDoc::get(llvm::StringRef Pointer) const {
  if (Pointer.empty())
    return &Root;
  try {
    const nlohmann::json &V = Root.at(nlohmann::json::json_pointer(Pointer.str()));
    return &V;
  } catch (const nlohmann::json::exception &) {
    return nullptr;
  }
}

Loc JsonDoc::value(llvm::StringRef Pointer) const {
  auto It = Index.find(Pointer);
  if (It == Index.end())
    return Loc(llvm::SMRange(Start, Start));
  return Loc(It->second.Value);
}

Loc JsonDoc::key(llvm::StringRef Pointer) const {
  auto It = Index.find(Pointer);
  if (It == Index.end())
    return Loc(llvm::SMRange(Start, Start));
  return Loc(It->second.Key);
}

const std::vector<std::string> &JsonDoc::keys(llvm::StringRef Pointer) const {
  static const std::vector<std::string> Empty;
  auto It = Members.find(Pointer);
  return It == Members.end() ? Empty : It->second;
}

std::string JsonDoc::child(llvm::StringRef Pointer, llvm::StringRef Key) {
  std::string Out = Pointer.str();
  Out += '/';
  for (char C : Key) {
    if (C == '~')
      Out += "~0";
    else if (C == '/')
      Out += "~1";
    else
      Out += C;
  }
  return Out;
}

std::string JsonDoc::child(llvm::StringRef Pointer, size_t Index) {
  return Pointer.str() + "/" + std::to_string(Index);
}
