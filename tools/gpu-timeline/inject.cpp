/* inject.cpp - a CUPTI injection library that records every kernel, memcpy and memset a CUDA process runs
   on the GPU (start and end in ns on the GPU's clock, stream, name) and writes them as CSV at exit.

   Loaded by the CUDA driver itself when CUDA_INJECTION64_PATH names it (no change to the program: it works
   for our train and for python3 running torch alike); ATP_TIMELINE_OUT is the CSV to write (%p in it: the
   process id, for several ranks). CUPTI's
   activity API buffers the records on the side, so the program runs at its own speed: unlike ncu, kernels
   are not serialized or replayed and clocks are not touched. tools/gpu_timeline.py reads the CSV.
   Build: tools/gpu-timeline.sh does it (g++ -shared against libcupti). */
#include <cupti.h>

#include <cxxabi.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct Record {
  char kind; // k kernel, c memcpy, s memset
  std::uint64_t start, end;
  std::uint32_t stream;
  std::string name;
};

std::mutex records_mutex;
std::vector<Record> records;
pid_t owner = 0; // the process that loaded us: a forked child inherits the handler and a copy of the records
constexpr std::size_t kBufferBytes = 8 << 20;

void check(CUptiResult r, const char *what) {
  if (r == CUPTI_SUCCESS)
    return;
  const char *msg = nullptr;
  cuptiGetResultString(r, &msg);
  std::fprintf(stderr, "gpu-timeline: %s failed: %s\n", what, msg ? msg : "?");
}

std::string demangle(const char *name) {
  if (!name)
    return "?";
  int status = 0;
  char *d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : name;
  std::free(d);
  return out;
}

void CUPTIAPI buffer_requested(std::uint8_t **buffer, std::size_t *size, std::size_t *max_records) {
  *buffer = static_cast<std::uint8_t *>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, std::uint32_t, std::uint8_t *buffer, std::size_t, std::size_t valid) {
  CUpti_Activity *rec = nullptr;
  std::vector<Record> got;
  while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    switch (rec->kind) {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
      const auto *k = reinterpret_cast<const CUpti_ActivityKernel10 *>(rec);
      got.push_back({'k', k->start, k->end, k->streamId, demangle(k->name)});
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
      const auto *m = reinterpret_cast<const CUpti_ActivityMemcpy6 *>(rec);
      got.push_back({'c', m->start, m->end, m->streamId, "memcpy " + std::to_string(m->bytes) + " B"});
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
      const auto *m = reinterpret_cast<const CUpti_ActivityMemset4 *>(rec);
      got.push_back({'s', m->start, m->end, m->streamId, "memset " + std::to_string(m->bytes) + " B"});
      break;
    }
    default:
      break;
    }
  }
  std::size_t dropped = 0;
  if (cuptiActivityGetNumDroppedRecords(nullptr, 0, &dropped) == CUPTI_SUCCESS && dropped)
    std::fprintf(stderr, "gpu-timeline: %zu records dropped\n", dropped);
  std::free(buffer);
  std::lock_guard<std::mutex> lock(records_mutex);
  records.insert(records.end(), got.begin(), got.end());
}

void write_csv() {
  if (getpid() != owner)
    return;
  check(cuptiActivityFlushAll(1), "cuptiActivityFlushAll");
  std::lock_guard<std::mutex> lock(records_mutex);
  // A process that ran nothing on the GPU writes nothing: a helper it starts (MPI's daemon, which may probe
  // CUDA) inherits CUDA_INJECTION64_PATH and must not overwrite the trainer's file when it exits after it.
  if (records.empty())
    return;
  std::string path = std::getenv("ATP_TIMELINE_OUT") ? std::getenv("ATP_TIMELINE_OUT") : "gpu-timeline.csv";
  if (const std::size_t at = path.find("%p"); at != std::string::npos) // one file per process (several ranks)
    path.replace(at, 2, std::to_string(getpid()));
  std::FILE *f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::perror("gpu-timeline: cannot write the CSV");
    return;
  }
  std::fprintf(f, "kind,start_ns,end_ns,stream,name\n");
  for (const Record &r : records) {
    std::string name = r.name;
    for (char &c : name)
      if (c == '"')
        c = '\'';
    std::fprintf(f, "%c,%llu,%llu,%u,\"%s\"\n", r.kind, (unsigned long long)r.start, (unsigned long long)r.end,
                 r.stream, name.c_str());
  }
  std::fclose(f);
  std::fprintf(stderr, "gpu-timeline: %zu records -> %s\n", records.size(), path.c_str());
}

} // namespace

extern "C" int InitializeInjection() {
  static bool done = false; // the driver may call this more than once (a cuInit per library that loads CUDA)
  if (done)
    return 1;
  done = true;
  owner = getpid();
  check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks");
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enable kernels");
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY), "enable memcpy");
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET), "enable memset");
  std::atexit(write_csv);
  return 1;
}
