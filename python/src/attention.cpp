// Bindings of the attention family: the softmax attention engine (dense and block-sparse, with the
// block layouts of attention/block_layout.hpp as opaque BlockLayout objects), the content-sparse
// attentions (DMA, HAX, block top-k, selective attention), neighborhood attention 1-D / 2-D / 3-D
// (fused, and the split qk / av ops), and local (sliding-window) attention. Names, argument names
// and shapes as the C++ ops (attention/*.hpp); conventions in common.hpp.

#include <array>
#include <cstdint>
#include <vector>

#include "common.hpp"

namespace tokenmix::python {

namespace {

using attention::AttentionOptions;
using attention::BlockLayout;
using IndexArray = py::array_t<Index, py::array::c_style | py::array::forcecast>;
using BoolArray = py::array_t<bool, py::array::c_style | py::array::forcecast>;

// ---- the engine's options -----------------------------------------------------------------------

// The arrays of AttentionOptions, held so that the views stay valid.
struct OptionArrays {
  std::optional<Array> key_bias, row_scale;
};

OptionArrays option_arrays(const char* op, const py::object& key_bias, const py::object& row_scale) {
  return OptionArrays{as_optional<3>(op, "key_bias", key_bias, "[B, 1 / Hkv / H, Lk]"),
                      as_optional<3>(op, "row_scale", row_scale, "[B, H, Lq]")};
}

AttentionOptions make_options(const OptionArrays& a, std::optional<float> scale, bool causal,
                              std::optional<Index> q_offset, float softcap, const Eigen::ThreadPoolDevice* device) {
  AttentionOptions o;
  o.scale = scale, o.causal = causal, o.q_offset = q_offset, o.softcap = softcap;
  o.key_bias = view<3>(a.key_bias), o.row_scale = view<3>(a.row_scale);
  o.device = device;
  return o;
}

py::tuple result_tuple(attention::AttentionResult&& r) {
  return py::make_tuple(to_numpy(std::move(r.out)), to_numpy(std::move(r.lse)));
}

// The q, k, v of the engine: [B, Lq, H, P], [B, Lk, Hkv, P], [B, Lk, Hkv, Pv].
struct Qkv {
  Array q, k, v;
};
Qkv as_qkv(const char* op, const py::object& q, const py::object& k, const py::object& v) {
  return Qkv{as_array<4>(op, "q", q, "[B, Lq, H, P]"), as_array<4>(op, "k", k, "[B, Lk, Hkv, P]"),
             as_array<4>(op, "v", v, "[B, Lk, Hkv, Pv]")};
}

// ---- arrays of other dtypes ---------------------------------------------------------------------

// An integer array of rank R (ValueError for floats: positions are never rounded silently).
template <int R>
IndexArray as_index_array(const char* op, const char* name, const py::handle& obj, const char* dims) {
  const py::array raw = py::array::ensure(obj);
  if (!raw || !(raw.dtype().kind() == 'i' || raw.dtype().kind() == 'u' || raw.dtype().kind() == 'b'))
    throw py::value_error(std::string(op) + ": " + name + " must be an integer array " + dims + " (got " +
                          std::string(py::str(raw ? py::str(raw.dtype()) : py::str(py::type::of(obj)))) + ")");
  IndexArray a = IndexArray::ensure(raw);
  if (a.ndim() != R)
    throw py::value_error(std::string(op) + ": " + name + " has " + std::to_string(a.ndim()) + " dimensions, expected " +
                          std::to_string(R) + ": " + dims);
  return a;
}

std::vector<std::uint64_t> as_buckets(const char* op, const char* name, const py::handle& obj) {
  const py::array raw = py::array::ensure(obj);
  if (!raw || !(raw.dtype().kind() == 'i' || raw.dtype().kind() == 'u') || raw.ndim() != 1)
    throw py::value_error(std::string(op) + ": " + name + " must be a 1-D integer array [L] (hax_buckets' rows)");
  const auto a = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>::ensure(raw);
  return std::vector<std::uint64_t>(a.data(), a.data() + a.size());
}

// ---- BlockLayout ------------------------------------------------------------------------------

py::array_t<bool> layout_mask(const BlockLayout& L) {
  py::array_t<bool> mask({py::ssize_t(L.heads), py::ssize_t(L.q_length), py::ssize_t(L.k_length)});
  auto m = mask.mutable_unchecked<3>();
  for (Index h = 0; h < L.heads; ++h)
    for (Index i = 0; i < L.q_length; ++i)
      for (Index j = 0; j < L.k_length; ++j) m(h, i, j) = L.allowed(h, i, j);
  return mask;
}

void register_layout_class(py::module_& m) {
  py::class_<BlockLayout>(m, "BlockLayout",
                          "A block-sparse attention layout (attention/block_layout.hpp): which keys each query may "
                          "attend to, as q_block x k_block blocks (full or token-masked), one pattern per query head "
                          "or one shared (heads = 1). Built by the *_layout functions; used by "
                          "block_sparse_attention. to_mask() gives the token rule as a boolean array.")
      .def_readonly("q_block", &BlockLayout::q_block)
      .def_readonly("k_block", &BlockLayout::k_block)
      .def_readonly("q_length", &BlockLayout::q_length)
      .def_readonly("k_length", &BlockLayout::k_length)
      .def_readonly("heads", &BlockLayout::heads)
      .def_property_readonly("q_blocks", &BlockLayout::q_blocks)
      .def_property_readonly("k_blocks", &BlockLayout::k_blocks)
      .def_property_readonly("entries", &BlockLayout::entries, "kept (query block, key block) pairs over all rows")
      .def("block_density", &BlockLayout::block_density, "kept block pairs / all heads·q_blocks·k_blocks pairs")
      .def("allowed", &BlockLayout::allowed, py::arg("head"), py::arg("i"), py::arg("j"),
           "Whether query i of head `head` may attend to key j (False outside the layout).")
      .def("to_mask", &layout_mask,
           "The token rule as a boolean array [heads, q_length, k_length]: mask[h, i, j] = allowed(h, i, j).")
      .def("__repr__", [](const BlockLayout& L) {
        std::ostringstream os;
        os << "BlockLayout(q_length=" << L.q_length << ", k_length=" << L.k_length << ", q_block=" << L.q_block
           << ", k_block=" << L.k_block << ", heads=" << L.heads << ", entries=" << L.entries() << ")";
        return os.str();
      });
}

// ---- neighborhood parameters ------------------------------------------------------------------

// An int (every axis) or a sequence of R ints.
template <int R, class T>
std::array<T, R> per_axis(const char* op, const char* name, const py::object& obj) {
  std::array<T, R> out{};
  auto is_int = [](const py::handle& h) { return PyIndex_Check(h.ptr()) != 0; };  // int, bool, NumPy integers
  if (is_int(obj)) {
    out.fill(obj.cast<T>());
    return out;
  }
  if (py::isinstance<py::sequence>(obj) && !py::isinstance<py::str>(obj)) {
    const py::sequence seq = obj.cast<py::sequence>();
    if (py::len(seq) == std::size_t(R)) {
      for (int a = 0; a < R; ++a) {
        const py::object item = seq[std::size_t(a)];
        if (!is_int(item)) break;
        out[std::size_t(a)] = item.cast<T>();
        if (a == R - 1) return out;
      }
    }
  }
  throw py::value_error(std::string(op) + ": " + name + " must be an int or a tuple of " + std::to_string(R) +
                        " ints (one per spatial axis of a " + std::to_string(R) + "-D input), got " +
                        std::string(py::repr(obj)));
}

template <int R>
attention::NeighborhoodParams<R> na_params(const char* op, const py::object& kernel_size, const py::object& dilation,
                                           const py::object& stride, const py::object& is_causal,
                                           std::optional<float> scale) {
  attention::NeighborhoodParams<R> p;
  p.kernel_size = per_axis<R, Index>(op, "kernel_size", kernel_size);
  p.dilation = per_axis<R, Index>(op, "dilation", dilation);
  p.stride = per_axis<R, Index>(op, "stride", stride);
  p.causal = per_axis<R, bool>(op, "is_causal", is_causal);
  p.scale = scale;
  return p;
}

// The spatial rank R of an input of rank R + 3 (4, 5 or 6), or ValueError.
int spatial_rank(const char* op, const char* name, const py::object& obj, const char* dims) {
  const py::array raw = py::array::ensure(obj);
  const int rank = raw ? int(raw.ndim()) : -1;
  if (rank >= 4 && rank <= 6) return rank - 3;
  std::ostringstream os;
  os << op << ": " << name << " has " << rank << " dimensions, expected 4, 5 or 6: " << dims
     << " with 1, 2 or 3 spatial axes X..";
  throw py::value_error(os.str());
}

template <int R>
py::object na_run(const py::object& q, const py::object& k, const py::object& v, const py::object& kernel_size,
                  const py::object& dilation, const py::object& stride, const py::object& is_causal,
                  const py::object& rpb, std::optional<float> scale, bool return_lse, int threads) {
  const char* op = "neighborhood_attention";
  const Array qa = as_array<R + 3>(op, "q", q, "[B, X.., H, P]");
  const Array ka = as_array<R + 3>(op, "k", k, "[B, X.., Hkv, P]");
  const Array va = as_array<R + 3>(op, "v", v, "[B, X.., Hkv, Pv]");
  const std::optional<Array> ra = as_optional<R + 1>(op, "rpb", rpb, "[H, 2K-1 per axis]");
  const attention::NeighborhoodParams<R> p = na_params<R>(op, kernel_size, dilation, stride, is_causal, scale);
  const Eigen::ThreadPoolDevice* device = device_for(op, threads);
  Tensor<float, R + 3> out;
  Tensor<float, R + 2> lse;
  {
    GilRelease release;
    out = attention::neighborhood_attention<R>(view<R + 3>(qa), view<R + 3>(ka), view<R + 3>(va), p, view<R + 1>(ra),
                                               return_lse ? &lse : nullptr, device);
  }
  if (!return_lse) return to_numpy(std::move(out));
  return py::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(lse)));
}

// neighborhood_qk (softmax = false) or neighborhood_attention_weights (true).
template <int R>
py::object na_qk(const py::object& q, const py::object& k, const py::object& kernel_size, const py::object& dilation,
                 const py::object& stride, const py::object& is_causal, const py::object& rpb,
                 std::optional<float> scale, int threads, bool softmax) {
  const char* op = softmax ? "neighborhood_attention_weights" : "neighborhood_qk";
  const Array qa = as_array<R + 3>(op, "q", q, "[B, X.., H, P]");
  const Array ka = as_array<R + 3>(op, "k", k, "[B, X.., Hkv, P]");
  const std::optional<Array> ra = as_optional<R + 1>(op, "rpb", rpb, "[H, 2K-1 per axis]");
  const attention::NeighborhoodParams<R> p = na_params<R>(op, kernel_size, dilation, stride, is_causal, scale);
  const Eigen::ThreadPoolDevice* device = device_for(op, threads);
  Tensor<float, R + 3> logits;
  {
    GilRelease release;
    logits = softmax ? attention::neighborhood_attention_weights<R>(view<R + 3>(qa), view<R + 3>(ka), p, view<R + 1>(ra), device)
                     : attention::neighborhood_qk<R>(view<R + 3>(qa), view<R + 3>(ka), p, view<R + 1>(ra), device);
  }
  return to_numpy(std::move(logits));
}

// na_qk dispatched on q's spatial rank.
py::object na_qk_any(const py::object& q, const py::object& k, const py::object& kernel_size,
                     const py::object& dilation, const py::object& stride, const py::object& is_causal,
                     const py::object& rpb, std::optional<float> scale, int threads, bool softmax) {
  switch (spatial_rank(softmax ? "neighborhood_attention_weights" : "neighborhood_qk", "q", q, "[B, X.., H, P]")) {
    case 1: return na_qk<1>(q, k, kernel_size, dilation, stride, is_causal, rpb, scale, threads, softmax);
    case 2: return na_qk<2>(q, k, kernel_size, dilation, stride, is_causal, rpb, scale, threads, softmax);
    default: return na_qk<3>(q, k, kernel_size, dilation, stride, is_causal, rpb, scale, threads, softmax);
  }
}

template <int R>
py::object na_av(const py::object& weights, const py::object& v, const py::object& kernel_size,
                 const py::object& dilation, const py::object& stride, const py::object& is_causal, int threads) {
  const char* op = "neighborhood_av";
  const Array wa = as_array<R + 3>(op, "weights", weights, "[B, X.., H, S]");
  const Array va = as_array<R + 3>(op, "v", v, "[B, X.., Hkv, Pv]");
  const attention::NeighborhoodParams<R> p = na_params<R>(op, kernel_size, dilation, stride, is_causal, std::nullopt);
  const Eigen::ThreadPoolDevice* device = device_for(op, threads);
  Tensor<float, R + 3> out;
  {
    GilRelease release;
    out = attention::neighborhood_av<R>(view<R + 3>(wa), view<R + 3>(va), p, device);
  }
  return to_numpy(std::move(out));
}

#define TOKENMIX_NA_KWARGS                                                                                 \
  py::kw_only(), py::arg("kernel_size"), py::arg("dilation") = 1, py::arg("stride") = 1,                  \
      py::arg("is_causal") = false

constexpr const char* kNaParamsDoc =
    " kernel_size, dilation, stride (ints) and is_causal (bool: NeighborhoodParams::causal, NATTEN's name): "
    "one value for every axis or a tuple with one per spatial axis; the window rule is NATTEN >= 0.20's "
    "(attention/neighborhood_types.hpp: windows shifted inward at the borders, dilation groups by residue, "
    "kernel_size·dilation <= each axis, 1 <= stride <= kernel_size).";

// The engine's option keywords (after the op's own arguments).
#define TOKENMIX_ATTN_OPTION_ARGS                                                                               \
  py::arg("scale") = py::none(), py::arg("causal") = false, py::arg("q_offset") = py::none(),                   \
      py::arg("softcap") = 0.0f, py::arg("key_bias") = py::none(), py::arg("row_scale") = py::none(),           \
      py::arg("threads") = 1

constexpr const char* kOptionsDoc =
    " Options (AttentionOptions): scale (default 1/sqrt(P)); causal (j <= i with positions i = q_offset + r); "
    "q_offset (absolute position of query row 0, default Lk - Lq); softcap (> 0: s = softcap·tanh(s / softcap)); "
    "key_bias [B, 1 / Hkv / H, Lk] added to the logits; row_scale [B, H, Lq] multiplying each query's logits. "
    "Returns (out [B, Lq, H, Pv], lse [B, H, Lq]); a query with no allowed key gets out = 0, lse = -inf.";

std::string doc(const char* head, const char* tail) { return std::string(head) + tail; }

}  // namespace

void register_attention(py::module_& m) {
  register_layout_class(m);

  // ---- the engine -------------------------------------------------------------------------------
  m.def(
      "attention",
      [](const py::object& q, const py::object& k, const py::object& v, std::optional<float> scale, bool causal,
         std::optional<Index> q_offset, float softcap, const py::object& key_bias, const py::object& row_scale,
         int threads) {
        const char* op = "attention";
        const Qkv a = as_qkv(op, q, k, v);
        const OptionArrays arrays = option_arrays(op, key_bias, row_scale);
        const AttentionOptions o = make_options(arrays, scale, causal, q_offset, softcap, device_for(op, threads));
        attention::AttentionResult r;
        {
          GilRelease release;
          r = attention::attention(view<4>(a.q), view<4>(a.k), view<4>(a.v), o);
        }
        return result_tuple(std::move(r));
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), TOKENMIX_ATTN_OPTION_ARGS,
      doc("Dense softmax attention (online softmax, flash-attn layout): q [B, Lq, H, P], k [B, Lk, Hkv, P], "
          "v [B, Lk, Hkv, Pv]; GQA / MQA when H is a multiple of Hkv.",
          kOptionsDoc)
          .c_str());

  m.def(
      "block_sparse_attention",
      [](const py::object& q, const py::object& k, const py::object& v, const BlockLayout& layout,
         std::optional<float> scale, bool causal, std::optional<Index> q_offset, float softcap,
         const py::object& key_bias, const py::object& row_scale, int threads) {
        const char* op = "block_sparse_attention";
        const Qkv a = as_qkv(op, q, k, v);
        const OptionArrays arrays = option_arrays(op, key_bias, row_scale);
        const AttentionOptions o = make_options(arrays, scale, causal, q_offset, softcap, device_for(op, threads));
        attention::AttentionResult r;
        {
          GilRelease release;
          r = attention::block_sparse_attention(view<4>(a.q), view<4>(a.k), view<4>(a.v), layout, o);
        }
        return result_tuple(std::move(r));
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("layout"), py::kw_only(), TOKENMIX_ATTN_OPTION_ARGS,
      doc("Block-sparse softmax attention over a BlockLayout (only its kept blocks are computed; the layout states "
          "the pattern, causality included; causal=True is an extra AND). Query row r is layout position "
          "q_offset + r. q [B, Lq, H, P], k [B, Lk, Hkv, P], v [B, Lk, Hkv, Pv]; layout.heads 1 or H.",
          kOptionsDoc)
          .c_str());

  // ---- layouts ----------------------------------------------------------------------------------
  m.def(
      "dense_layout",
      [](Index q_length, Index k_length, Index block) {
        GilRelease release;
        return attention::dense_layout(q_length, k_length, block);
      },
      py::arg("q_length"), py::arg("k_length"), py::arg("block"), "Every (i, j) as a layout of block x block blocks.");
  m.def(
      "causal_layout",
      [](Index length, Index block) {
        GilRelease release;
        return attention::causal_layout(length, block);
      },
      py::arg("length"), py::arg("block"), "Every j <= i as a layout of block x block blocks.");
  m.def(
      "sliding_window_layout",
      [](Index length, Index block, Index window, Index sinks) {
        GilRelease release;
        return attention::sliding_window_layout(length, block, window, sinks);
      },
      py::arg("length"), py::arg("block"), py::arg("window"), py::arg("sinks") = 0,
      "Sliding window with attention sinks (StreamingLLM): j <= i and (i - j < window or j < sinks).");
  m.def(
      "local_stride_layout",
      [](Index length, Index block, Index local_blocks, Index vert_stride, Index heads, Index kv_heads,
         Index head_offset, Index dense_heads, bool homogeneous) {
        attention::LocalStrideParams p;
        p.block = block, p.local_blocks = local_blocks, p.vert_stride = vert_stride, p.heads = heads;
        p.kv_heads = kv_heads, p.head_offset = head_offset, p.dense_heads = dense_heads, p.homogeneous = homogeneous;
        GilRelease release;
        return attention::local_stride_layout(length, p);
      },
      py::arg("length"), py::kw_only(), py::arg("block") = 64, py::arg("local_blocks") = 16, py::arg("vert_stride") = 8,
      py::arg("heads") = 1, py::arg("kv_heads") = 1, py::arg("head_offset") = 0, py::arg("dense_heads") = 0,
      py::arg("homogeneous") = false,
      "S2-Attention / DKernel local-stride shards (LocalStrideParams), causal: block (qb, kb) kept iff kb <= qb and "
      "(qb - kb < local_blocks or (kb + hk·max(1, vert_stride / kv_heads) + head_offset) mod vert_stride == 0), "
      "hk = h / (heads / kv_heads); the last dense_heads kv heads keep every causal block; homogeneous: one pattern "
      "(head 0's). Tokens inside kept blocks: j <= i. One pattern per query head unless homogeneous.");
  m.def(
      "power_layout",
      [](Index length, Index block, Index window_blocks, Index sink_blocks) {
        GilRelease release;
        return attention::power_layout(length, block, window_blocks, sink_blocks);
      },
      py::arg("length"), py::arg("block"), py::arg("window_blocks"), py::arg("sink_blocks") = 1,
      "PowerAttention: with d = i/block - j/block, j <= i and (d < window_blocks or d a power of two or 0 or "
      "j < sink_blocks·block).");
  m.def(
      "dilated_layout",
      [](Index length, Index block, const std::vector<std::pair<Index, Index>>& pairs) {
        std::vector<attention::DilatedSegment> segments;
        for (const auto& p : pairs) segments.push_back(attention::DilatedSegment{p.first, p.second});
        GilRelease release;
        return attention::dilated_layout(length, block, segments);
      },
      py::arg("length"), py::arg("block"), py::arg("pairs"),
      "LongNet dilated segments over blocks, causal: pairs = [(segment_blocks, dilation), ...]; query block qb may "
      "attend to key block kb <= qb iff kb == qb or, for some pair, both lie in one segment and qb ≡ kb "
      "(mod dilation). Tokens inside kept blocks: j <= i.");
  m.def(
      "layout_union",
      [](const BlockLayout& a, const BlockLayout& b) {
        GilRelease release;
        return attention::layout_union(a, b);
      },
      py::arg("a"), py::arg("b"), "Union of two layouts over the same lengths and blocks (heads 1 and H give H).");
  m.def(
      "layout_intersection",
      [](const BlockLayout& a, const BlockLayout& b) {
        GilRelease release;
        return attention::layout_intersection(a, b);
      },
      py::arg("a"), py::arg("b"), "Intersection of two layouts over the same lengths and blocks.");
  m.def(
      "block_layout_from_mask",
      [](const py::object& mask, Index q_block, Index k_block) {
        const char* op = "block_layout_from_mask";
        const py::array raw = py::array::ensure(mask);
        if (!raw || (raw.ndim() != 2 && raw.ndim() != 3))
          throw py::value_error(std::string(op) + ": mask must be a boolean array [Lq, Lk] or [heads, Lq, Lk]");
        const BoolArray b = BoolArray::ensure(raw);
        const Index heads = b.ndim() == 3 ? b.shape(0) : 1;
        const Index Lq = b.shape(b.ndim() - 2), Lk = b.shape(b.ndim() - 1);
        const bool* data = b.data();
        GilRelease release;
        return BlockLayout::from_token_lists(op, Lq, Lk, q_block, k_block, heads, [&](Index h, Index i) {
          std::vector<Index> keys;
          const bool* row = data + (h * Lq + i) * Lk;
          for (Index j = 0; j < Lk; ++j)
            if (row[j]) keys.push_back(j);
          return keys;
        });
      },
      py::arg("mask"), py::kw_only(), py::arg("q_block"), py::arg("k_block"),
      "Any pattern as a layout (BlockLayout::from_token_lists): mask [Lq, Lk] (shared) or [heads, Lq, Lk], "
      "mask[h, i, j] true when query i may attend to key j.");

  // ---- content-sparse attention -----------------------------------------------------------------
  m.def(
      "dma_key_bias",
      [](const py::object& v, const py::object& W_dt, const py::object& A) {
        const char* op = "dma_key_bias";
        const Array va = as_array<4>(op, "v", v, "[B, Lk, Hkv, Pv]");
        const Array wa = as_array<2>(op, "W_dt", W_dt, "[Hkv, Hkv·Pv]");
        const Array aa = as_array<1>(op, "A", A, "[Hkv]");
        Tensor<float, 3> bias;
        {
          GilRelease release;
          bias = attention::dma_key_bias(view<4>(va), view<2>(wa), view<1>(aa));
        }
        return to_numpy(std::move(bias));
      },
      py::arg("v"), py::arg("W_dt"), py::arg("A"),
      "DMA's value-derived key bias: bias[b, hk, j] = A[hk]·softplus(Σ_c W_dt[hk, c]·v[b, j, :, :].flat[c]). "
      "v [B, Lk, Hkv, Pv], W_dt [Hkv, Hkv·Pv], A [Hkv]. Returns [B, Hkv, Lk].");
  m.def(
      "dynamic_mask_attention",
      [](const py::object& q, const py::object& k, const py::object& v, const py::object& key_bias, Index window,
         Index block, std::optional<float> scale, bool causal, std::optional<Index> q_offset, float softcap,
         const py::object& row_scale, int threads) {
        const char* op = "dynamic_mask_attention";
        const Qkv a = as_qkv(op, q, k, v);
        const Array bias = as_array<3>(op, "key_bias", key_bias, "[B, Hkv, Lk]");
        const OptionArrays arrays = option_arrays(op, py::none(), row_scale);
        const AttentionOptions o = make_options(arrays, scale, causal, q_offset, softcap, device_for(op, threads));
        attention::AttentionResult r;
        {
          GilRelease release;
          r = attention::dynamic_mask_attention(view<4>(a.q), view<4>(a.k), view<4>(a.v), view<3>(bias), window, o,
                                                block);
        }
        return result_tuple(std::move(r));
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("key_bias"), py::arg("window"), py::kw_only(),
      py::arg("block") = 64, py::arg("scale") = py::none(), py::arg("causal") = false, py::arg("q_offset") = py::none(),
      py::arg("softcap") = 0.0f, py::arg("row_scale") = py::none(), py::arg("threads") = 1,
      "Dynamic Mask Attention: softmax(scale·q·kᵀ + key_bias[b, hk, j]) over the selected keys: causal, the `window` "
      "keys j <= i with the largest bias (ties: the later key); not causal, the `window` largest over all of Lk. "
      "key_bias [B, Hkv, Lk] (dma_key_bias); block: the layout's block size. Returns (out [B, Lq, H, Pv], "
      "lse [B, H, Lq]).");
  m.def(
      "hax_buckets",
      [](const py::object& x, const py::object& R) {
        const char* op = "hax_buckets";
        const Array xa = as_array<3>(op, "x", x, "[B, L, d]");
        const Array ra = as_array<2>(op, "R", R, "[d, n_bits]");
        std::vector<std::vector<std::uint64_t>> b;
        {
          GilRelease release;
          b = attention::hax_buckets(view<3>(xa), view<2>(ra));
        }
        py::array_t<std::uint64_t> out({py::ssize_t(xa.shape(0)), py::ssize_t(xa.shape(1))});
        auto o = out.mutable_unchecked<2>();
        for (py::ssize_t i = 0; i < out.shape(0); ++i)
          for (py::ssize_t t = 0; t < out.shape(1); ++t) o(i, t) = b[std::size_t(i)][std::size_t(t)];
        return out;
      },
      py::arg("x"), py::arg("R"),
      "HAX's sign-bit LSH buckets: x [B, L, d] centred over the sequence and L2-normalised, bucket = Σ_b "
      "[(x̂·R)_b > 0]·2^b with R [d, n_bits]. Returns uint64 [B, L].");
  m.def(
      "hax_layout",
      [](const py::object& q_buckets, const py::object& k_buckets, const py::object& scores, Index budget,
         Index block) {
        const char* op = "hax_layout";
        const std::vector<std::uint64_t> qb = as_buckets(op, "q_buckets", q_buckets);
        const std::vector<std::uint64_t> kb = as_buckets(op, "k_buckets", k_buckets);
        const Array sa = as_array<1>(op, "scores", scores, "[L]");
        if (sa.shape(0) != py::ssize_t(kb.size()))
          throw py::value_error(std::string(op) + ": scores has " + std::to_string(sa.shape(0)) +
                                " entries, expected one per key (" + std::to_string(kb.size()) + ")");
        GilRelease release;
        return attention::hax_layout(qb, kb, sa.data(), budget, block);
      },
      py::arg("q_buckets"), py::arg("k_buckets"), py::arg("scores"), py::arg("budget"), py::kw_only(),
      py::arg("block") = 64,
      "HAX's selection for one sequence: query i attends to j <= i among the budget/2 most recent keys of its "
      "bucket, or whose scores[j] is among the budget - budget/2 largest of scores[:i+1]. q_buckets, k_buckets "
      "[L] (hax_buckets rows), scores [L]. Returns a BlockLayout.");
  m.def(
      "hax_attention",
      [](const py::object& q2, const py::object& k2, const py::object& v, const py::object& R,
         const py::object& scores, Index budget, Index block, std::optional<float> scale, float softcap,
         const py::object& key_bias, const py::object& row_scale, int threads) {
        const char* op = "hax_attention";
        const Array qa = as_array<4>(op, "q2", q2, "[B, L, 1, d]"), ka = as_array<4>(op, "k2", k2, "[B, L, 1, d]");
        const Array va = as_array<4>(op, "v", v, "[B, L, 1, Dv]");
        const Array ra = as_array<2>(op, "R", R, "[d, n_bits]"), sa = as_array<2>(op, "scores", scores, "[B, L]");
        const OptionArrays arrays = option_arrays(op, key_bias, row_scale);
        const AttentionOptions o = make_options(arrays, scale, true, std::nullopt, softcap, device_for(op, threads));
        attention::AttentionResult r;
        {
          GilRelease release;
          r = attention::hax_attention(view<4>(qa), view<4>(ka), view<4>(va), view<2>(ra), view<2>(sa), budget, o,
                                       block);
        }
        return result_tuple(std::move(r));
      },
      py::arg("q2"), py::arg("k2"), py::arg("v"), py::arg("R"), py::arg("scores"), py::arg("budget"), py::kw_only(),
      py::arg("block") = 64, py::arg("scale") = py::none(), py::arg("softcap") = 0.0f, py::arg("key_bias") = py::none(),
      py::arg("row_scale") = py::none(), py::arg("threads") = 1,
      "HAX attention, causal prefill, one head: q2, k2 [B, L, 1, d], v [B, L, 1, Dv], R [d, n_bits], scores [B, L]: "
      "hax_buckets, then hax_layout per sequence, then the engine. Returns (out [B, L, 1, Dv], lse [B, 1, L]).");
  m.def(
      "block_topk_layout",
      [](const py::object& q, const py::object& k, Index block, Index top_k, Index sink_blocks, Index local_blocks) {
        const char* op = "block_topk_layout";
        const Array qa = as_array<4>(op, "q", q, "[1, L, H, P]"), ka = as_array<4>(op, "k", k, "[1, L, Hkv, P]");
        if (qa.shape(0) != 1 || ka.shape(0) != 1 || ka.shape(1) != qa.shape(1) || ka.shape(3) != qa.shape(3) ||
            ka.shape(2) < 1 || qa.shape(2) % ka.shape(2) != 0)
          throw py::value_error(std::string(op) +
                                ": expected q [1, L, H, P] and k [1, L, Hkv, P] (one batch element, H a multiple of Hkv)");
        attention::BlockTopKParams p;
        p.block = block, p.top_k = top_k, p.sink_blocks = sink_blocks, p.local_blocks = local_blocks;
        GilRelease release;
        return attention::block_topk_layout(view<4>(qa), view<4>(ka), p);
      },
      py::arg("q"), py::arg("k"), py::kw_only(), py::arg("block") = 64, py::arg("top_k") = 16,
      py::arg("sink_blocks") = 1, py::arg("local_blocks") = 2,
      "Block top-k selection of one batch element (causal): per (head, query block), the sink and local blocks plus "
      "the top_k others by <mean query, mean key> of the blocks. q [1, L, H, P], k [1, L, Hkv, P]. Returns a "
      "BlockLayout with H patterns.");
  m.def(
      "block_topk_attention",
      [](const py::object& q, const py::object& k, const py::object& v, Index block, Index top_k, Index sink_blocks,
         Index local_blocks, std::optional<float> scale, float softcap, const py::object& key_bias,
         const py::object& row_scale, int threads) {
        const char* op = "block_topk_attention";
        const Qkv a = as_qkv(op, q, k, v);
        const OptionArrays arrays = option_arrays(op, key_bias, row_scale);
        const AttentionOptions o = make_options(arrays, scale, true, std::nullopt, softcap, device_for(op, threads));
        attention::BlockTopKParams p;
        p.block = block, p.top_k = top_k, p.sink_blocks = sink_blocks, p.local_blocks = local_blocks;
        attention::AttentionResult r;
        {
          GilRelease release;
          r = attention::block_topk_attention(view<4>(a.q), view<4>(a.k), view<4>(a.v), p, o);
        }
        return result_tuple(std::move(r));
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("block") = 64, py::arg("top_k") = 16,
      py::arg("sink_blocks") = 1, py::arg("local_blocks") = 2, py::arg("scale") = py::none(),
      py::arg("softcap") = 0.0f, py::arg("key_bias") = py::none(), py::arg("row_scale") = py::none(),
      py::arg("threads") = 1,
      "Block top-k attention, causal prefill (Lq = Lk): block_topk_layout per batch element, then the engine. "
      "Returns (out [B, L, H, Pv], lse [B, H, L]).");
  m.def(
      "ssa_query_temperature",
      [](const py::object& f, const py::object& alpha, Index q_offset) {
        const char* op = "ssa_query_temperature";
        const Array fa = as_array<3>(op, "f", f, "[B, H, Lq]"), aa = as_array<1>(op, "alpha", alpha, "[H]");
        Tensor<float, 3> tau;
        {
          GilRelease release;
          tau = attention::ssa_query_temperature(view<3>(fa), view<1>(aa), q_offset);
        }
        return to_numpy(std::move(tau));
      },
      py::arg("f"), py::arg("alpha"), py::kw_only(), py::arg("q_offset") = 0,
      "Selective Attention's query temperature: tanh(f[b, h, r]) + 1 + sigmoid(alpha[h])·log(q_offset + r + 1). "
      "f [B, H, Lq], alpha [H]. Returns [B, H, Lq].");
  m.def(
      "selective_attention",
      [](const py::object& q, const py::object& k, const py::object& v, const py::object& temperature,
         const py::object& value_temperature, std::optional<float> scale, bool causal, std::optional<Index> q_offset,
         float softcap, const py::object& key_bias, int threads) {
        const char* op = "selective_attention";
        const Qkv a = as_qkv(op, q, k, v);
        const Array t = as_array<3>(op, "temperature", temperature, "[B, H, Lq]");
        const std::optional<Array> vt = as_optional<3>(op, "value_temperature", value_temperature, "[B, Lk, Hkv]");
        const OptionArrays arrays = option_arrays(op, key_bias, py::none());
        const AttentionOptions o = make_options(arrays, scale, causal, q_offset, softcap, device_for(op, threads));
        attention::AttentionResult r;
        {
          GilRelease release;
          // selective_attention writes the scaled values into its v argument when value_temperature is
          // given (content_sparse.hpp assigns one TensorMap to another, which copies the elements): it
          // gets a copy so the caller's array is left as it was.
          Tensor<float, 4> v_copy;
          if (vt) v_copy = view<4>(a.v);
          const ConstTensorView<float, 4> values = vt ? ConstTensorView<float, 4>(v_copy.data(), v_copy.dimensions())
                                                      : view<4>(a.v);
          r = attention::selective_attention(view<4>(a.q), view<4>(a.k), values, view<3>(t), view<3>(vt), o);
        }
        return result_tuple(std::move(r));
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("temperature"), py::kw_only(),
      py::arg("value_temperature") = py::none(), py::arg("scale") = py::none(), py::arg("causal") = false,
      py::arg("q_offset") = py::none(), py::arg("softcap") = 0.0f, py::arg("key_bias") = py::none(),
      py::arg("threads") = 1,
      "Selective Attention (SSA): logits scaled per query by temperature [B, H, Lq] (ssa_query_temperature), "
      "values scaled per key by value_temperature [B, Lk, Hkv] (optional), then dense attention. Returns "
      "(out [B, Lq, H, Pv], lse [B, H, Lq]).");

  // ---- neighborhood attention -------------------------------------------------------------------
  m.def(
      "neighborhood_attention",
      [](const py::object& q, const py::object& k, const py::object& v, const py::object& kernel_size,
         const py::object& dilation, const py::object& stride, const py::object& is_causal, const py::object& rpb,
         std::optional<float> scale, bool return_lse, int threads) -> py::object {
        switch (spatial_rank("neighborhood_attention", "q", q, "[B, X.., H, P]")) {
          case 1: return na_run<1>(q, k, v, kernel_size, dilation, stride, is_causal, rpb, scale, return_lse, threads);
          case 2: return na_run<2>(q, k, v, kernel_size, dilation, stride, is_causal, rpb, scale, return_lse, threads);
          default: return na_run<3>(q, k, v, kernel_size, dilation, stride, is_causal, rpb, scale, return_lse, threads);
        }
      },
      py::arg("q"), py::arg("k"), py::arg("v"), TOKENMIX_NA_KWARGS, py::arg("rpb") = py::none(),
      py::arg("scale") = py::none(), py::arg("return_lse") = false, py::arg("threads") = 1,
      doc("Fused neighborhood attention (NATTEN na1d / na2d / na3d, heads-last), dispatched on q's rank: "
          "q [B, X.., H, P], k [B, X.., Hkv, P], v [B, X.., Hkv, Pv] with 1, 2 or 3 spatial axes X.. (GQA: H a "
          "multiple of Hkv); rpb [H, 2K-1 per axis] (optional, NATTEN <= 0.17's bias, not with causal axes); scale "
          "default 1/sqrt(P). Returns out [B, X.., H, Pv], or (out, lse [B, X.., H]) with return_lse=True.",
          kNaParamsDoc)
          .c_str());
  struct QkVariant {
    const char* name;
    bool softmax;
    const char* text;
  };
  for (const QkVariant& variant : {
           QkVariant{"neighborhood_qk", false,
                     "Neighborhood attention logits (NATTEN <= 0.17's na*d_qk, heads-last): q [B, X.., H, P], "
                     "k [B, X.., Hkv, P] -> [B, X.., H, S], S = prod(kernel_size) window slots in row-major order of "
                     "the per-axis key index (ascending position); logit = scale·<q, k> + rpb; slots past a causal "
                     "window hold -inf."},
           QkVariant{"neighborhood_attention_weights", true,
                     "Neighborhood attention weights: softmax over the window slots of neighborhood_qk's logits, "
                     "computed in one kernel pass (no logits array): q [B, X.., H, P], k [B, X.., Hkv, P] -> "
                     "[B, X.., H, S]; slots past a causal window 0. The maps MASS hands to A2SSM; neighborhood_av of "
                     "them equals neighborhood_attention."}})
    m.def(
        variant.name,
        [softmax = variant.softmax](const py::object& q, const py::object& k, const py::object& kernel_size,
                                    const py::object& dilation, const py::object& stride, const py::object& is_causal,
                                    const py::object& rpb, std::optional<float> scale, int threads) -> py::object {
          return na_qk_any(q, k, kernel_size, dilation, stride, is_causal, rpb, scale, threads, softmax);
        },
        py::arg("q"), py::arg("k"), TOKENMIX_NA_KWARGS, py::arg("rpb") = py::none(), py::arg("scale") = py::none(),
        py::arg("threads") = 1, doc(variant.text, kNaParamsDoc).c_str());
  m.def(
      "neighborhood_av",
      [](const py::object& weights, const py::object& v, const py::object& kernel_size, const py::object& dilation,
         const py::object& stride, const py::object& is_causal, int threads) -> py::object {
        switch (spatial_rank("neighborhood_av", "weights", weights, "[B, X.., H, S]")) {
          case 1: return na_av<1>(weights, v, kernel_size, dilation, stride, is_causal, threads);
          case 2: return na_av<2>(weights, v, kernel_size, dilation, stride, is_causal, threads);
          default: return na_av<3>(weights, v, kernel_size, dilation, stride, is_causal, threads);
        }
      },
      py::arg("weights"), py::arg("v"), TOKENMIX_NA_KWARGS, py::arg("threads") = 1,
      doc("Neighborhood aggregation (NATTEN <= 0.17's na*d_av, heads-last): weights [B, X.., H, S] (S slots as "
          "neighborhood_qk's), v [B, X.., Hkv, Pv] -> [B, X.., H, Pv] = Σ_slots weight·v_key (slots past a causal "
          "window are skipped).",
          kNaParamsDoc)
          .c_str());

  // ---- local attention --------------------------------------------------------------------------
  m.def(
      "local_attention",
      [](const py::object& q, const py::object& k, const py::object& v, Index window, bool causal,
         const std::string& kind, std::optional<float> scale, const py::object& positions,
         const py::object& rel_pos_bias, int threads) {
        const char* op = "local_attention";
        attention::LocalAttentionOptions o;
        if (kind == "softmax") {
          o.kind = attention::LocalAttentionKind::softmax;
        } else if (kind == "relu_squared") {
          o.kind = attention::LocalAttentionKind::relu_squared;
        } else {
          throw py::value_error(std::string(op) + ": kind must be 'softmax' or 'relu_squared', got '" + kind + "'");
        }
        const Array qa = as_array<4>(op, "q", q, "[B, Lq, H, P]"), ka = as_array<4>(op, "k", k, "[B, L, H, P]");
        const Array va = as_array<4>(op, "v", v, "[B, L, H, Pv]");
        std::optional<IndexArray> pa;
        if (!positions.is_none()) pa = as_index_array<2>(op, "positions", positions, "[B, L]");
        const std::optional<Array> ba = as_optional<2>(op, "rel_pos_bias", rel_pos_bias, "[H, 2M-1]");
        o.window = window, o.causal = causal, o.scale = scale;
        if (pa) o.positions.emplace(pa->data(), Index(pa->shape(0)), Index(pa->shape(1)));
        o.rel_pos_bias = view<2>(ba);
        o.device = device_for(op, threads);
        Tensor<float, 4> out;
        {
          GilRelease release;
          out = attention::local_attention(view<4>(qa), view<4>(ka), view<4>(va), o);
        }
        return to_numpy(std::move(out));
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("window"), py::arg("causal") = true,
      py::arg("kind") = "softmax", py::arg("scale") = py::none(), py::arg("positions") = py::none(),
      py::arg("rel_pos_bias") = py::none(), py::arg("threads") = 1,
      "Local (sliding-window) attention (SeqBoat's local mode): query i attends to keys i-window..i (causal) or "
      "i-window..i+window (bidirectional), cut at the ends. q [B, Lq, H, P] (the last Lq of the L tokens), "
      "k [B, L, H, P], v [B, L, H, Pv]. kind 'softmax' (default scale 1/sqrt(P)) or 'relu_squared' (weights "
      "relu(s)², unnormalised; default scale 1/window causal, 1/(2·window) bidirectional). Logit = scale·<q, k> + "
      "rel_pos_bias[h, clamp(pos_j - pos_i, -(M-1), M-1) + M-1], rel_pos_bias [H, 2M-1] optional, positions "
      "[B, L] integer, non-decreasing (default: the token index). Returns out [B, Lq, H, Pv].");
}

}  // namespace tokenmix::python
