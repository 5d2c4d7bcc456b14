/* HF checkpoint <-> TP shards, driven by a generated ModelPlan.

   shard_checkpoint: an HF checkpoint (file, index or folder) -> one
     safetensors file per TP rank, tp_rank_RR_of_NN.safetensors, whose
     metadata carry the plan's fingerprint, the TP rank and size. Streaming:
     one parameter at a time, one local tensor buffer.
   consolidate_checkpoint: those files -> an HF checkpoint (one file, or
     an index and size-bounded shards) whose tensors are byte-identical to
     the original's; refuses shards of another plan, naming the file.
   load_sharded: one TP rank's shards, read straight from the HF checkpoint,
     each rank touching only its own byte ranges.
   shard_main / consolidate_main: the command lines of the generated tools. */
#pragma once

#include "atp/plan.h"
#include "atp/status.h"
#include "atp/tensor.h"

#include <cstdint>
#include <string>
#include <vector>

namespace atp {

/// The file name of TP rank `rank`'s shard file.
std::string shard_file_name(int rank, int tp_size);

/// Checks that the checkpoint holds exactly the plan's parameters (names,
/// dtypes, shapes), naming the first difference.
Status check_against_plan(const ModelPlan &plan, const std::string &hf_checkpoint);

/// HF checkpoint -> out_dir/tp_rank_RR_of_NN.safetensors for every rank.
/// Contiguous runs of the checkpoint of 256 KiB or more (a replicated
/// tensor, a rank's rows of a split along dim 0) are copied file to file by
/// the kernel (AtomicFile::copy_from); shorter ones go through a buffer.
Status shard_checkpoint(const ModelPlan &plan, const std::string &hf_checkpoint, const std::string &out_dir);
/// Tests only: sets the run length from which shard_checkpoint copies in the
/// kernel (1: every run). Process-wide.
void set_kernel_copy_min_bytes(std::size_t nbytes);

/// Shard files in shards_dir -> an HF checkpoint at `out`: a .safetensors
/// file, or a folder (index + shards of at most max_shard_bytes each).
Status consolidate_checkpoint(const ModelPlan &plan, const std::string &shards_dir, const std::string &out,
                              std::uint64_t max_shard_bytes = 5000000000ull);

/// TP rank `tp_rank`'s local tensors, in plan order, read from the HF
/// checkpoint with pread of exactly the rank's byte ranges.
Result<std::vector<HostTensor>> load_sharded(const ModelPlan &plan, int tp_rank, const std::string &hf_checkpoint);

/// load_sharded, accepting a checkpoint whose float tensors are stored in another float dtype than the
/// plan's (F32, BF16, F16; the plan states its config.json's torch_dtype): e.g. an fp32 export of `train`
/// for a bf16 model. The tensors come back in the stored dtype.
Result<std::vector<HostTensor>> load_sharded_any_float(const ModelPlan &plan, int tp_rank,
                                                       const std::string &hf_checkpoint);

/// `shard --in HF_CHECKPOINT --out SHARDS/`
int shard_main(const ModelPlan &plan, int argc, char **argv);
/// `consolidate --in SHARDS/ --out HF_CHECKPOINT [--max-shard-bytes N]`
int consolidate_main(const ModelPlan &plan, int argc, char **argv);

} // namespace atp
