/* safetensors_header: the rules of the safetensors format's JSON, in one
   place, for the runtime's reader and the compiler's header reader alike.

   Header-only, with nlohmann/json as its only dependency, so the compiler
   includes it without linking runtime code. Files are untrusted input, so
   the JSON is read strictly (RFC 8259 as nlohmann reads it, UTF-8 checked,
   no duplicate object keys, a nesting limit) and nothing here throws: every
   failure comes back as an Error naming the rule, the tensor and the
   numbers, with a message that callers put after the file's name:

     tensor 'lm_head.weight': data_offsets [0, 96] end past the data region (64 bytes)

   A header is an object: "__metadata__" -> {string: string}, and for each
   tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} relative
   to the data region after the header. The rules: every dtype is known,
   every dimension is an integer in [0, 2^63), the element size times the
   dimensions (multiplied in order, as the safetensors crate does) stays
   below 2^63, begin <= end <= the data region's size, end - begin is that
   byte size, and no two tensors' bytes overlap (ranges are half-open, so an
   empty tensor overlaps nothing). Gaps are allowed and other keys of an
   entry ignored. The index of a sharded checkpoint (transformers'
   model.safetensors.index.json) has its rules here too. */
#pragma once

#include "atp/quote.h"
#include "atp/safetensors_format.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <new>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace atp::st {

/// JSON nesting a header may have; a valid one needs 3 (object, tensor, shape).
constexpr int kMaxHeaderDepth = 16;
/// JSON nesting an index may have; transformers writes 2.
constexpr int kMaxIndexDepth = 64;

/// Which rule an input broke.
enum class Rule {
  none,            ///< no error
  not_json,        ///< malformed JSON, a duplicate key, too deep, out of memory
  bad_length,      ///< the file is too short, or its header length is wrong
  not_object,      ///< the header or index is not an object, or does not start with '{'
  bad_metadata,    ///< "__metadata__" (or an index's "metadata") is malformed
  bad_entry,       ///< a tensor entry is not an object or lacks a key
  unknown_dtype,   ///< "dtype" is not a string or not a known name
  bad_shape,       ///< "shape" is not an array of integers in [0, 2^63)
  shape_overflow,  ///< the byte size reaches 2^63
  bad_offsets,     ///< "data_offsets" is not [begin, end] of non-negative integers
  reversed,        ///< begin > end
  past_data,       ///< end > the data region's size
  size_mismatch,   ///< end - begin differs from the byte size
  overlap,         ///< two tensors share bytes (`other` is the earlier one)
  bad_weight_map,  ///< an index's weight_map is missing or malformed
  unsafe_shard,    ///< an index maps a tensor to an absolute path or through ".."
};

/// What is wrong, for callers to report after the file's name.
struct Error {
  Rule rule = Rule::none;
  std::string tensor; ///< the tensor it is about; "" for the file as a whole
  std::string other;  ///< overlap: the tensor whose bytes `tensor` overlaps
  std::uint64_t begin = 0, end = 0; ///< the data_offsets involved, where there are any
  std::string message; ///< e.g. "tensor 'w': data_offsets [8, 0] are reversed"

  bool ok() const { return rule == Rule::none; }
};

/// One tensor as its header entry describes it.
struct Tensor {
  std::string name;
  std::string dtype; ///< a name of kDTypes
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0; ///< data_offsets, from the data region's start
};

/// A validated header: tensors sorted by data offset (the writer's order;
/// names break ties between empty tensors), and the metadata.
struct Header {
  std::vector<Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// A validated index: the weight_map in key order, and the metadata object
/// (null if there is none).
struct Index {
  std::vector<std::pair<std::string, std::string>> weight_map; ///< tensor -> shard name
  nlohmann::json metadata;
};

namespace detail {

inline Error make_error(Rule rule, std::string message, std::string tensor = {}) {
  Error e;
  e.rule = rule;
  e.message = std::move(message);
  e.tensor = std::move(tensor);
  return e;
}

/// "[a, b, c]", shortened after 8 elements.
template <class T> std::string list_string(const std::vector<T> &v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i == 8) {
      out += ", ...";
      break;
    }
    out += (i ? ", " : "") + std::to_string(v[i]);
  }
  return out + "]";
}

/// nlohmann's exception text without its "[json.exception.x.n] " tag, in
/// printable ASCII (it may quote raw input bytes) and at most 200 bytes.
inline std::string json_reason(const char *what) {
  std::string_view msg(what);
  if (msg.substr(0, 16) == "[json.exception.") {
    std::size_t tag = msg.find("] ");
    if (tag != std::string_view::npos)
      msg.remove_prefix(tag + 2);
  }
  std::string out;
  for (std::size_t i = 0; i < msg.size() && i < 200; ++i) {
    unsigned char c = static_cast<unsigned char>(msg[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  if (msg.size() > 200)
    out += "...";
  return out;
}

/// Thrown by the parse callback to stop at a duplicate key or too deep a
/// nesting; caught in parse_json.
struct Abort {
  std::string reason;
};

} // namespace detail

/// Describes a JSON value for a message without dumping containers:
/// "null", "true", "-3", "2.5", "the string 'x'", "an array", "an object".
inline std::string describe(const nlohmann::json &v) {
  if (v.is_string())
    return "the string " + quote(v.get_ref<const std::string &>());
  if (v.is_array())
    return "an array";
  if (v.is_object())
    return "an object";
  return v.dump(); // a number, a boolean or null: a few bytes
}

/// Parses one JSON document into `out`. A duplicate key in any object (which
/// nlohmann would silently resolve to the last) and nesting deeper than
/// `max_depth` are errors. `what` ("header", "index") starts messages:
/// "header is not valid JSON: parse error at line 1, column 6: ...",
/// "header has duplicate key 'w'". Never throws.
inline Error parse_json(std::string_view text, std::string_view what, int max_depth,
                        nlohmann::json &out) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> keys; // of the objects being read
  auto callback = [&](int depth, json::parse_event_t event, json &parsed) {
    switch (event) {
    case json::parse_event_t::object_start:
    case json::parse_event_t::array_start:
      if (depth >= max_depth)
        throw detail::Abort{std::string(what) + " is not valid JSON: nesting deeper than " +
                            std::to_string(max_depth) + " levels"};
      if (event == json::parse_event_t::object_start)
        keys.emplace_back();
      break;
    case json::parse_event_t::object_end:
      if (!keys.empty())
        keys.pop_back();
      break;
    case json::parse_event_t::key:
      if (!keys.empty() && !keys.back().insert(parsed.get_ref<const std::string &>()).second)
        throw detail::Abort{std::string(what) + " has duplicate key " +
                            quote(parsed.get_ref<const std::string &>())};
      break;
    default:
      break;
    }
    return true;
  };
  try {
    out = json::parse(text.begin(), text.end(), callback);
    return Error();
  } catch (const detail::Abort &a) {
    return detail::make_error(Rule::not_json, a.reason);
  } catch (const json::exception &e) {
    return detail::make_error(Rule::not_json, std::string(what) + " is not valid JSON: " +
                                                  detail::json_reason(e.what()));
  } catch (const std::bad_alloc &) {
    return detail::make_error(Rule::not_json, "out of memory reading the " + std::string(what));
  }
}

namespace detail {

/// A non-negative JSON integer, or false.
inline bool read_uint(const nlohmann::json &v, std::uint64_t &out) {
  if (!v.is_number_unsigned())
    return false;
  out = v.get<std::uint64_t>();
  return true;
}

/// Validates one header entry other than "__metadata__".
inline Error parse_tensor(const std::string &name, const nlohmann::json &v,
                          std::uint64_t data_size, Tensor &t) {
  const std::string where = "tensor " + quote(name) + ": ";
  auto bad = [&](Rule rule, const std::string &msg) {
    return make_error(rule, where + msg, name);
  };
  if (!v.is_object())
    return bad(Rule::bad_entry, "entry is " + describe(v) + ", not an object");
  for (const char *key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key))
      return bad(Rule::bad_entry, std::string("missing '") + key + "'");

  t.name = name;
  const nlohmann::json &dtype = v["dtype"];
  if (!dtype.is_string())
    return bad(Rule::unknown_dtype, "'dtype' is " + describe(dtype) + ", not a string");
  t.dtype = dtype.get<std::string>();
  unsigned elem = dtype_size(t.dtype);
  if (elem == 0)
    return bad(Rule::unknown_dtype, "unknown dtype " + quote(t.dtype));

  const nlohmann::json &shape = v["shape"];
  if (!shape.is_array())
    return bad(Rule::bad_shape, "'shape' is " + describe(shape) + ", not an array");
  constexpr std::uint64_t max = std::uint64_t(std::numeric_limits<std::int64_t>::max());
  std::uint64_t bytes = elem;
  bool overflow = false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    std::uint64_t d = 0;
    if (!read_uint(shape[i], d))
      return bad(Rule::bad_shape, "'shape' element " + std::to_string(i) + " is " +
                                      describe(shape[i]) + ", not a non-negative integer");
    if (d > max)
      return bad(Rule::bad_shape, "'shape' element " + std::to_string(i) + " (" +
                                      std::to_string(d) + ") is too large");
    t.shape.push_back(std::int64_t(d));
    if (overflow || (d != 0 && bytes > max / d))
      overflow = true; // sticky, as a checked product in order is
    else
      bytes *= d;
  }
  if (overflow)
    return bad(Rule::shape_overflow, "shape " + list_string(t.shape) + " of " + t.dtype +
                                         " overflows int64 when multiplied out");

  const nlohmann::json &offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !read_uint(offsets[0], t.begin) ||
      !read_uint(offsets[1], t.end))
    return bad(Rule::bad_offsets, "'data_offsets' must be [begin, end] of non-negative integers");
  const std::string range = "data_offsets " + list_string(std::vector<std::uint64_t>{t.begin, t.end});
  Error e;
  if (t.begin > t.end)
    e = bad(Rule::reversed, range + " are reversed");
  else if (t.end > data_size)
    e = bad(Rule::past_data, range + " end past the data region (" + std::to_string(data_size) +
                                 " bytes)");
  else if (t.end - t.begin != bytes)
    e = bad(Rule::size_mismatch, range + " span " + std::to_string(t.end - t.begin) +
                                     " bytes but shape " + list_string(t.shape) + " of " +
                                     t.dtype + " needs " + std::to_string(bytes));
  e.begin = t.begin;
  e.end = t.end;
  return e;
}

inline Error parse_metadata(const nlohmann::json &v, std::map<std::string, std::string> &out) {
  if (!v.is_object())
    return make_error(Rule::bad_metadata, "'__metadata__' is " + describe(v) + ", not an object");
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it.value().is_string())
      return make_error(Rule::bad_metadata, "'__metadata__' value of " + quote(it.key()) +
                                                " is " + describe(it.value()) + ", not a string");
    out[it.key()] = it.value().get<std::string>();
  }
  return Error();
}

inline Error parse_header_impl(std::string_view text, std::uint64_t data_size, Header &out) {
  if (text.empty() || text[0] != '{')
    return make_error(Rule::not_object, "header does not start with '{'");
  nlohmann::json doc;
  if (Error e = parse_json(text, "header", kMaxHeaderDepth, doc); !e.ok())
    return e;
  if (!doc.is_object()) // not reached after '{', kept for the rule's sake
    return make_error(Rule::not_object, "header is " + describe(doc) + ", not an object");
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (Error e = parse_metadata(it.value(), out.metadata); !e.ok())
        return e;
      continue;
    }
    Tensor t;
    if (Error e = parse_tensor(it.key(), it.value(), data_size, t); !e.ok())
      return e;
    out.tensors.push_back(std::move(t));
  }
  std::sort(out.tensors.begin(), out.tensors.end(), [](const Tensor &a, const Tensor &b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Sorted by begin, a range overlaps some earlier one iff it begins before
  // the furthest end so far, which is `last`'s (there was no overlap yet).
  const Tensor *last = nullptr;
  for (const Tensor &t : out.tensors) {
    if (t.begin == t.end)
      continue;
    if (last && t.begin < last->end) {
      Error e = make_error(
          Rule::overlap,
          "tensors " + quote(last->name) + " " +
              list_string(std::vector<std::uint64_t>{last->begin, last->end}) + " and " +
              quote(t.name) + " " + list_string(std::vector<std::uint64_t>{t.begin, t.end}) +
              " overlap",
          t.name);
      e.other = last->name;
      e.begin = t.begin;
      e.end = t.end;
      return e;
    }
    last = &t;
  }
  return Error();
}

/// A shard name from an index: relative, no ".." component, not empty.
inline bool safe_relative(std::string_view name) {
  if (name.empty() || name[0] == '/')
    return false;
  std::size_t pos = 0;
  while (pos <= name.size()) {
    std::size_t end = std::min(name.find('/', pos), name.size());
    if (name.substr(pos, end - pos) == "..")
      return false;
    pos = end + 1;
  }
  return true;
}

} // namespace detail

/// Checks a file's size and the header length N its first 8 bytes give
/// (little-endian): the file holds the 8 bytes, N <= kMaxHeaderSize and N
/// fits in what follows them. Call with N = 0 to check only the size.
inline Error check_header_length(std::uint64_t file_size, std::uint64_t n) {
  if (file_size < 8)
    return detail::make_error(Rule::bad_length, "file is " + std::to_string(file_size) +
                                                    " bytes, too short for a safetensors header");
  if (n > kMaxHeaderSize)
    return detail::make_error(Rule::bad_length, "header length " + std::to_string(n) +
                                                    " exceeds the safetensors limit of " +
                                                    std::to_string(kMaxHeaderSize) + " bytes");
  if (n > file_size - 8)
    return detail::make_error(Rule::bad_length, "header length " + std::to_string(n) +
                                                    " runs past the end of the file (" +
                                                    std::to_string(file_size) + " bytes)");
  return Error();
}

/// Validates header JSON (the bytes after the 8-byte length) against the
/// size of the data region that follows it. Never throws.
inline Error parse_header(std::string_view text, std::uint64_t data_size, Header &out) {
  out = Header();
  try {
    return detail::parse_header_impl(text, data_size, out);
  } catch (const std::bad_alloc &) {
    return detail::make_error(Rule::not_json, "out of memory reading the header");
  } catch (const nlohmann::json::exception &e) {
    // Not reached: every access above is type-checked first.
    return detail::make_error(Rule::not_json, std::string("malformed header: ") +
                                                  detail::json_reason(e.what()));
  }
}

/// Validates an index's text: an object whose optional "metadata" is an
/// object and whose "weight_map" maps each tensor to a shard file name,
/// relative to the index's folder without "..". Which shards exist and
/// hold what is the caller's to check. Never throws.
inline Error parse_index(std::string_view text, Index &out) {
  out = Index();
  try {
    nlohmann::json doc;
    if (Error e = parse_json(text, "index", kMaxIndexDepth, doc); !e.ok())
      return e;
    if (!doc.is_object())
      return detail::make_error(Rule::not_object, "index is " + describe(doc) + ", not an object");
    if (auto meta = doc.find("metadata"); meta != doc.end()) {
      if (!meta->is_object())
        return detail::make_error(Rule::bad_metadata,
                                  "'metadata' is " + describe(*meta) + ", not an object");
      out.metadata = std::move(*meta);
    }
    auto map = doc.find("weight_map");
    if (map == doc.end())
      return detail::make_error(Rule::bad_weight_map, "index has no 'weight_map'");
    if (!map->is_object())
      return detail::make_error(Rule::bad_weight_map,
                                "'weight_map' is " + describe(*map) + ", not an object");
    for (auto it = map->begin(); it != map->end(); ++it) {
      if (!it.value().is_string())
        return detail::make_error(Rule::bad_weight_map,
                                  "'weight_map' value of " + quote(it.key()) + " is " +
                                      describe(it.value()) + ", not a string",
                                  it.key());
      const std::string &shard = it.value().get_ref<const std::string &>();
      if (!detail::safe_relative(shard))
        return detail::make_error(Rule::unsafe_shard,
                                  "tensor " + quote(it.key()) + " is mapped to " + quote(shard) +
                                      ", which is not a file name relative to the index's folder",
                                  it.key());
      out.weight_map.emplace_back(it.key(), shard);
    }
    return Error();
  } catch (const std::bad_alloc &) {
    return detail::make_error(Rule::not_json, "out of memory reading the index");
  }
}

} // namespace atp::st
