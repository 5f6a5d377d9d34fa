// LSTM, GRU and RNN (ONNX opsets 7, 14, 22): one layer of a recurrent network over a
// sequence, every direction (forward, reverse, bidirectional), both layouts.
//
// Shapes, layout 0 (layout 1 swaps the first two axes of X, Y, initial_* and Y_*):
//   X [S, B, I]   W [D, G*H, I]   R [D, G*H, H]   B [D, 2*G*H] (Wb then Rb)
//   sequence_lens [B] (i32 / i64)   initial_h, initial_c [D, B, H]   P [D, 3*H]
//   Y [S, D, B, H]   Y_h, Y_c [D, B, H]
//   D = 2 for bidirectional, else 1; G = 4 for LSTM (gates i, o, f, c), 3 for GRU (z, r,
//   h), 1 for RNN. Every input but X, W, R and every output is optional.
// Per step, x the input row, h and c the previous states, f / g / h the activations:
//   RNN:  H = f(x Wi' + h Ri' + Wbi + Rbi)
//   GRU:  z = f(x Wz' + h Rz' + Wbz + Rbz),  r = f(x Wr' + h Rr' + Wbr + Rbr)
//         n = g(x Wh' + (r * h) Rh' + Rbh + Wbh)          linear_before_reset = 0
//         n = g(x Wh' + r * (h Rh' + Rbh) + Wbh)          linear_before_reset = 1
//         H = (1 - z) * n + z * h
//   LSTM: i = f(x Wi' + h Ri' + Pi * c + Wbi + Rbi),  f = f(... Pf * c ...)
//         (input_forget = 1: f = 1 - i),  n = g(x Wc' + h Rc' + Wbc + Rbc)
//         C = f * c + i * n,  o = f(x Wo' + h Ro' + Po * C + Wbo + Rbo),  H = o * h(C)
// `clip` bounds every gate's pre-activation to [-clip, clip]. `activations` are ONNX's
// names, case-insensitive, F per direction (forward first); `activation_alpha` / `_beta`
// are consumed in order by the activations that take them (Affine, LeakyRelu,
// ThresholdedRelu, ScaledTanh, HardSigmoid, Elu), the ONNX op's default when the list is
// exhausted: as ONNX Runtime reads them.
// sequence_lens: batch row b runs steps 0 .. len_b - 1 (reverse: len_b - 1 down to 0); Y
// is 0 past len_b; Y_h / Y_c are the state after the row's last step, and 0 for len_b = 0
// (ONNX leaves that case open; this is ONNX Runtime's answer).
//
// How it runs: the input projection of all steps, X W' plus the biases that do not
// depend on the state, is one GEMM of S * B rows (gemm_f32); each step then adds h R' (a
// GEMM of B rows, accumulating) and applies the gates row by row. gemm_f32 is bit-identical
// for any thread count and the gate loops run on the calling thread, so the op is too.
// Float16 / bfloat16 / double inputs are computed in float32 and stored back.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include "runtime-check/kernels/gemm.h"
#include "runtime-check/kernels/vec_math.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

enum class Cell { Rnn, Gru, Lstm };

enum class ActKind {
    Relu,
    Tanh,
    Sigmoid,
    Affine,
    LeakyRelu,
    ThresholdedRelu,
    ScaledTanh,
    HardSigmoid,
    Elu,
    Softsign,
    Softplus
};

struct ActInfo {
    std::string_view name;  // lower case
    ActKind kind;
    bool takes_alpha, takes_beta;
    float alpha, beta;  // the ONNX op's defaults
};

constexpr ActInfo kActivations[] = {
    {"relu", ActKind::Relu, false, false, 0.0f, 0.0f},
    {"tanh", ActKind::Tanh, false, false, 0.0f, 0.0f},
    {"sigmoid", ActKind::Sigmoid, false, false, 0.0f, 0.0f},
    {"affine", ActKind::Affine, true, true, 1.0f, 0.0f},
    {"leakyrelu", ActKind::LeakyRelu, true, false, 0.01f, 0.0f},
    {"thresholdedrelu", ActKind::ThresholdedRelu, true, false, 1.0f, 0.0f},
    {"scaledtanh", ActKind::ScaledTanh, true, true, 1.0f, 1.0f},
    {"hardsigmoid", ActKind::HardSigmoid, true, true, 0.2f, 0.5f},
    {"elu", ActKind::Elu, true, false, 1.0f, 0.0f},
    {"softsign", ActKind::Softsign, false, false, 0.0f, 0.0f},
    {"softplus", ActKind::Softplus, false, false, 0.0f, 0.0f},
};

struct Activation {
    ActKind kind = ActKind::Tanh;
    float alpha = 0.0f, beta = 0.0f;

    // x = act(x), n elements, in place.
    void apply(float* x, int64_t n) const {
        switch (kind) {
            case ActKind::Sigmoid:
                return sigmoid_f32(x, x, n);
            case ActKind::Tanh:
                return tanh_f32(x, x, n);
            case ActKind::ScaledTanh:
                for (int64_t i = 0; i < n; ++i) x[i] *= beta;
                tanh_f32(x, x, n);
                for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
                return;
            default:
                for (int64_t i = 0; i < n; ++i) x[i] = scalar(x[i]);
        }
    }
    [[nodiscard]] float scalar(float v) const {
        switch (kind) {
            case ActKind::Relu:
                return v > 0.0f ? v : 0.0f;
            case ActKind::Affine:
                return alpha * v + beta;
            case ActKind::LeakyRelu:
                return v >= 0.0f ? v : alpha * v;
            case ActKind::ThresholdedRelu:
                return v > alpha ? v : 0.0f;
            case ActKind::HardSigmoid:
                return std::min(1.0f, std::max(0.0f, alpha * v + beta));
            case ActKind::Elu:
                return v >= 0.0f ? v : alpha * std::expm1(v);
            case ActKind::Softsign:
                return v / (1.0f + std::abs(v));
            case ActKind::Softplus:
                return v > 0.0f ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
            default:
                return v;  // the vectorised kinds never come here
        }
    }
};

struct Geometry {
    Cell cell;
    int64_t gates = 1;  // G
    int64_t seq = 0, batch = 0, input = 0, hidden = 0, dirs = 1;
    bool batch_first = false;          // layout = 1
    bool reverse_only = false;         // direction = reverse
    std::vector<Activation> acts;      // F per direction
    float clip = 0.0f;                 // 0: no clip
    bool linear_before_reset = false;  // GRU
    bool input_forget = false;         // LSTM
    std::vector<int64_t> lens;         // per batch row
};

std::string lower(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

std::vector<Activation> read_activations(const OpContext& c, Cell cell, int64_t dirs) {
    const size_t per_dir = cell == Cell::Lstm ? 3 : cell == Cell::Gru ? 2 : 1;
    std::vector<std::string> names;
    if (const Attribute* a = c.node.attr("activations"); a && !a->strings.empty())
        names = a->strings;
    else if (cell == Cell::Lstm)
        names = {"Sigmoid", "Tanh", "Tanh"};
    else if (cell == Cell::Gru)
        names = {"Sigmoid", "Tanh"};
    else
        names = {"Tanh"};
    if (!c.node.attr("activations") || c.node.attr("activations")->strings.empty())
        for (int64_t d = 1; d < dirs; ++d)
            for (size_t k = 0; k < per_dir; ++k) names.push_back(names[k]);
    // RNN's schema default lists two; a one-direction node uses the first.
    if (cell == Cell::Rnn && dirs == 1 && names.size() == 2) names.resize(1);
    if (names.size() != per_dir * static_cast<size_t>(dirs))
        c.fail(cat("activations lists ", names.size(), " functions; ", c.node.op_type, " with ",
                   dirs, " direction", dirs == 1 ? "" : "s", " takes ",
                   per_dir * static_cast<size_t>(dirs)));
    std::vector<float> alphas, betas;
    if (const Attribute* a = c.node.attr("activation_alpha")) alphas = a->floats;
    if (const Attribute* a = c.node.attr("activation_beta")) betas = a->floats;
    size_t next_alpha = 0, next_beta = 0;
    std::vector<Activation> acts;
    for (const auto& name : names) {
        const std::string key = lower(name);
        const ActInfo* info = nullptr;
        for (const auto& e : kActivations)
            if (e.name == key) info = &e;
        if (!info)
            c.fail(cat("activation '", name,
                       "' is not one of Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, "
                       "ScaledTanh, HardSigmoid, Elu, Softsign, Softplus"));
        Activation act{info->kind, info->alpha, info->beta};
        if (info->takes_alpha && next_alpha < alphas.size()) act.alpha = alphas[next_alpha++];
        if (info->takes_beta && next_beta < betas.size()) act.beta = betas[next_beta++];
        acts.push_back(act);
    }
    return acts;
}

// Input i as float32 with the given shape (its name in messages), or an empty tensor when
// the node leaves it out.
Tensor optional_input(const OpContext& c, size_t i, std::string_view name,
                      const std::vector<int64_t>& shape) {
    if (!c.has_input(i)) return Tensor{};
    const Tensor& t = *c.inputs[i];
    if (t.shape != shape)
        c.fail(cat("input ", name, " has shape ", shape_string(t.shape), ", expected ",
                   shape_string(shape)));
    return as_f32(c, t);
}

// [A, B, rest] -> [B, A, rest] (layout 1 <-> layout 0).
std::vector<float> swap_leading(const float* src, int64_t a, int64_t b, int64_t rest) {
    std::vector<float> out(static_cast<size_t>(a * b * rest));
    for (int64_t i = 0; i < a; ++i)
        for (int64_t j = 0; j < b; ++j)
            std::memcpy(out.data() + (j * a + i) * rest, src + (i * b + j) * rest,
                        static_cast<size_t>(rest) * sizeof(float));
    return out;
}

void clip_in_place(float* x, int64_t n, float bound) {
    if (bound <= 0.0f) return;
    for (int64_t i = 0; i < n; ++i) x[i] = std::min(bound, std::max(-bound, x[i]));
}

// The inputs of one direction (pointers into float32 copies), and its states.
struct Direction {
    const float* w = nullptr;   // [G*H, I]
    const float* r = nullptr;   // [G*H, H]
    const float* wb = nullptr;  // [G*H] or null
    const float* rb = nullptr;  // [G*H] or null
    const float* p = nullptr;   // [3*H] or null (LSTM)
    const Activation* acts = nullptr;
    bool reverse = false;
};

// Runs one direction over the sequence. x: [S, B, I] (layout 0). h, c: [B, H] initial
// states in, final states out. y: [S, D, B, H] with this direction's slot at `dir`, or null.
void run_direction(const ExecOptions& options, const Geometry& g, const Direction& d,
                   const float* x, float* h, float* c, float* y, int64_t dir) {
    const int64_t H = g.hidden, B = g.batch, GH = g.gates * H, S = g.seq;
    // Input projection of every step: proj[t, b, :] = x[t, b, :] W' + the state-free biases.
    std::vector<float> proj(static_cast<size_t>(S * B * GH));
    if (S * B > 0) {
        MatrixView xv{x, S * B, g.input, g.input, false};
        MatrixView wv{d.w, g.input, GH, g.input, true};
        gemm_f32(options, xv, wv, proj.data(), GH, false);
    }
    std::vector<float> bias(static_cast<size_t>(GH), 0.0f);
    for (int64_t j = 0; j < GH; ++j) {
        // GRU with linear_before_reset: Rbh goes inside r * (h Rh' + Rbh).
        const bool inner = g.cell == Cell::Gru && g.linear_before_reset && j >= 2 * H;
        bias[static_cast<size_t>(j)] = (d.wb ? d.wb[j] : 0.0f) + (d.rb && !inner ? d.rb[j] : 0.0f);
    }
    for (int64_t row = 0; row < S * B; ++row)
        for (int64_t j = 0; j < GH; ++j)
            proj[static_cast<size_t>(row * GH + j)] += bias[static_cast<size_t>(j)];

    const int64_t steps = B > 0 ? *std::max_element(g.lens.begin(), g.lens.end()) : 0;
    std::vector<float> gates(static_cast<size_t>(B * GH));
    std::vector<float> tmp(static_cast<size_t>(B * H));  // GRU: r * h, or h Rh'
    std::vector<int64_t> time(static_cast<size_t>(B));
    MatrixView hv{h, B, H, H, false};
    for (int64_t k = 0; k < steps; ++k) {
        for (int64_t b = 0; b < B; ++b) {
            const int64_t len = g.lens[static_cast<size_t>(b)];
            float* row = gates.data() + b * GH;
            if (k >= len) {
                time[static_cast<size_t>(b)] = -1;
                std::fill(row, row + GH, 0.0f);
                continue;
            }
            const int64_t t = d.reverse ? len - 1 - k : k;
            time[static_cast<size_t>(b)] = t;
            std::memcpy(row, proj.data() + (t * B + b) * GH,
                        static_cast<size_t>(GH) * sizeof(float));
        }
        // The recurrent term: every gate of LSTM / RNN, z and r of GRU.
        const int64_t rec_cols = g.cell == Cell::Gru ? 2 * H : GH;
        gemm_f32(options, hv, MatrixView{d.r, H, rec_cols, H, true}, gates.data(), GH, true);
        for (int64_t b = 0; b < B; ++b) {
            if (time[static_cast<size_t>(b)] < 0) continue;
            float* gr = gates.data() + b * GH;
            const float* hp = h + b * H;
            if (g.cell == Cell::Gru) {
                clip_in_place(gr, 2 * H, g.clip);
                d.acts[0].apply(gr, 2 * H);  // z, r
                if (!g.linear_before_reset)
                    for (int64_t j = 0; j < H; ++j)
                        tmp[static_cast<size_t>(b * H + j)] = gr[H + j] * hp[j];
            }
        }
        const float* rh = d.r + 2 * H * H;  // GRU's Rh [H, H]
        if (g.cell == Cell::Gru && !g.linear_before_reset)
            gemm_f32(options, MatrixView{tmp.data(), B, H, H, false}, MatrixView{rh, H, H, H, true},
                     gates.data() + 2 * H, GH, true);
        if (g.cell == Cell::Gru && g.linear_before_reset)
            gemm_f32(options, hv, MatrixView{rh, H, H, H, true}, tmp.data(), H, false);
        for (int64_t b = 0; b < B; ++b) {
            const int64_t t = time[static_cast<size_t>(b)];
            if (t < 0) continue;
            float* gr = gates.data() + b * GH;
            float* hb = h + b * H;
            if (g.cell == Cell::Rnn) {
                clip_in_place(gr, H, g.clip);
                d.acts[0].apply(gr, H);
                std::memcpy(hb, gr, static_cast<size_t>(H) * sizeof(float));
            } else if (g.cell == Cell::Gru) {
                float* z = gr;
                float* r = gr + H;
                float* n = gr + 2 * H;
                if (g.linear_before_reset) {
                    const float* hr = tmp.data() + b * H;
                    const float* rbh = d.rb ? d.rb + 2 * H : nullptr;
                    for (int64_t j = 0; j < H; ++j) n[j] += r[j] * (hr[j] + (rbh ? rbh[j] : 0.0f));
                }
                clip_in_place(n, H, g.clip);
                d.acts[1].apply(n, H);
                for (int64_t j = 0; j < H; ++j) hb[j] = (1.0f - z[j]) * n[j] + z[j] * hb[j];
            } else {
                float* gi = gr;
                float* go = gr + H;
                float* gf = gr + 2 * H;
                float* gc = gr + 3 * H;
                float* cb = c + b * H;
                if (d.p) {
                    const float* pi = d.p;
                    const float* pf = d.p + 2 * H;
                    for (int64_t j = 0; j < H; ++j) {
                        gi[j] += pi[j] * cb[j];
                        gf[j] += pf[j] * cb[j];
                    }
                }
                clip_in_place(gi, H, g.clip);
                clip_in_place(gf, 2 * H, g.clip);  // f and c
                d.acts[0].apply(gi, H);
                if (g.input_forget)
                    for (int64_t j = 0; j < H; ++j) gf[j] = 1.0f - gi[j];
                else
                    d.acts[0].apply(gf, H);
                d.acts[1].apply(gc, H);
                for (int64_t j = 0; j < H; ++j) cb[j] = gf[j] * cb[j] + gi[j] * gc[j];
                if (d.p) {
                    const float* po = d.p + H;
                    for (int64_t j = 0; j < H; ++j) go[j] += po[j] * cb[j];
                }
                clip_in_place(go, H, g.clip);
                d.acts[0].apply(go, H);
                std::memcpy(gi, cb, static_cast<size_t>(H) * sizeof(float));  // h(C) into gi
                d.acts[2].apply(gi, H);
                for (int64_t j = 0; j < H; ++j) hb[j] = go[j] * gi[j];
            }
            if (y)
                std::memcpy(y + ((t * g.dirs + dir) * B + b) * H, hb,
                            static_cast<size_t>(H) * sizeof(float));
        }
    }
    // A row with no steps ends in zero states (as ONNX Runtime).
    for (int64_t b = 0; b < B; ++b)
        if (g.lens[static_cast<size_t>(b)] == 0) {
            std::fill(h + b * H, h + (b + 1) * H, 0.0f);
            if (c) std::fill(c + b * H, c + (b + 1) * H, 0.0f);
        }
}

void run_recurrent(OpContext& c, Cell cell) {
    Geometry g;
    g.cell = cell;
    g.gates = cell == Cell::Lstm ? 4 : cell == Cell::Gru ? 3 : 1;
    const Tensor& x0 = c.input(0);
    if (!is_float(x0.dtype)) c.fail(cat("X must be a float tensor, found ", dtype_name(x0.dtype)));
    if (x0.shape.size() != 3) c.fail(cat("X must be 3-D, found shape ", shape_string(x0.shape)));
    const int64_t layout = c.node.attr_int("layout", 0);
    if (layout != 0 && layout != 1) c.fail(cat("layout must be 0 or 1, found ", layout));
    g.batch_first = layout == 1;
    g.seq = x0.shape[g.batch_first ? 1 : 0];
    g.batch = x0.shape[g.batch_first ? 0 : 1];
    g.input = x0.shape[2];
    const std::string direction = c.node.attr_string("direction", "forward");
    if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
        c.fail(cat("direction must be forward, reverse or bidirectional, found '", direction, "'"));
    g.dirs = direction == "bidirectional" ? 2 : 1;
    g.reverse_only = direction == "reverse";
    const Tensor& w0 = c.input(1);
    if (w0.shape.size() != 3 || w0.shape[1] % g.gates != 0)
        c.fail(cat("W has shape ", shape_string(w0.shape), ", expected [", g.dirs, ", ", g.gates,
                   " * hidden_size, ", g.input, "]"));
    g.hidden = c.node.attr_int("hidden_size", w0.shape[1] / g.gates);
    if (g.hidden <= 0) c.fail(cat("hidden_size must be positive, found ", g.hidden));
    const int64_t H = g.hidden, GH = g.gates * g.hidden, D = g.dirs, B = g.batch;
    const Tensor w = optional_input(c, 1, "W", {D, GH, g.input});
    const Tensor r = optional_input(c, 2, "R", {D, GH, H});
    if (!c.has_input(2)) c.fail("input R is required");
    const Tensor bias = optional_input(c, 3, "B", {D, 2 * GH});
    g.lens.assign(static_cast<size_t>(B), g.seq);
    if (c.has_input(4)) {
        const Tensor& sl = *c.inputs[4];
        if (sl.shape != std::vector<int64_t>{B})
            c.fail(cat("input sequence_lens has shape ", shape_string(sl.shape), ", expected [", B,
                       "]"));
        g.lens = read_ints(c, sl);
        for (size_t b = 0; b < g.lens.size(); ++b)
            if (g.lens[b] < 0 || g.lens[b] > g.seq)
                c.fail(cat("sequence_lens[", b, "] is ", g.lens[b], ", outside [0, ", g.seq, "]"));
    }
    const std::vector<int64_t> state_shape =
        g.batch_first ? std::vector<int64_t>{B, D, H} : std::vector<int64_t>{D, B, H};
    const Tensor h0 = optional_input(c, 5, "initial_h", state_shape);
    Tensor c0, p;
    if (cell == Cell::Lstm) {
        c0 = optional_input(c, 6, "initial_c", state_shape);
        p = optional_input(c, 7, "P", {D, 3 * H});
        g.input_forget = c.node.attr_int("input_forget", 0) != 0;
    } else if (c.input_count() > 6) {
        c.fail(cat(c.node.op_type, " takes at most 6 inputs, found ", c.input_count()));
    }
    if (cell == Cell::Gru) g.linear_before_reset = c.node.attr_int("linear_before_reset", 0) != 0;
    if (const Attribute* a = c.node.attr("clip")) {
        g.clip = a->f;
        if (!(g.clip > 0.0f)) c.fail(cat("clip must be positive, found ", g.clip));
    }
    g.acts = read_activations(c, cell, D);
    const size_t max_outputs = cell == Cell::Lstm ? 3 : 2;
    if (c.node.outputs.size() > max_outputs)
        c.fail(cat(c.node.op_type, " has at most ", max_outputs, " outputs, the node names ",
                   c.node.outputs.size()));

    // Everything in layout 0 from here on.
    const Tensor x = as_f32(c, x0);
    std::vector<float> xs;
    const float* px = x.values<float>().data();
    if (g.batch_first) {
        xs = swap_leading(px, B, g.seq, g.input);
        px = xs.data();
    }
    auto states_from = [&](const Tensor& t) {
        std::vector<float> s(static_cast<size_t>(D * B * H), 0.0f);
        if (t.shape.empty() && t.data.size() == 0) return s;
        const float* pt = t.values<float>().data();
        if (g.batch_first) return swap_leading(pt, B, D, H);
        std::copy(pt, pt + D * B * H, s.begin());
        return s;
    };
    std::vector<float> hs = states_from(h0);
    std::vector<float> cs = cell == Cell::Lstm ? states_from(c0) : std::vector<float>{};
    const bool want_y = !c.node.outputs.empty() && !c.node.outputs[0].empty();
    std::vector<float> ys(want_y ? static_cast<size_t>(g.seq * D * B * H) : 0, 0.0f);

    const float* pw = w.values<float>().data();
    const float* pr = r.values<float>().data();
    const float* pb = bias.data.size() ? bias.values<float>().data() : nullptr;
    const float* pp = p.data.size() ? p.values<float>().data() : nullptr;
    const size_t per_dir = g.acts.size() / static_cast<size_t>(D);
    for (int64_t dir = 0; dir < D; ++dir) {
        Direction d;
        d.w = pw + dir * GH * g.input;
        d.r = pr + dir * GH * H;
        d.wb = pb ? pb + dir * 2 * GH : nullptr;
        d.rb = pb ? pb + dir * 2 * GH + GH : nullptr;
        d.p = pp ? pp + dir * 3 * H : nullptr;
        d.acts = g.acts.data() + static_cast<size_t>(dir) * per_dir;
        d.reverse = g.reverse_only || dir == 1;
        run_direction(c.options, g, d, px, hs.data() + dir * B * H,
                      cell == Cell::Lstm ? cs.data() + dir * B * H : nullptr,
                      want_y ? ys.data() : nullptr, dir);
    }

    // Outputs, back in the node's layout and X's dtype. Layout 1: Y[b, t, d] = Y0[t, d, b]
    // and Y_h[b, d] = Y_h0[d, b].
    auto output = [&](const std::vector<float>& v, bool sequence) {
        const int64_t lead = sequence ? g.seq * D : D;  // rows before the batch axis in layout 0
        std::vector<int64_t> shape =
            sequence
                ? (g.batch_first ? std::vector<int64_t>{B, g.seq, D, H}
                                 : std::vector<int64_t>{g.seq, D, B, H})
                : (g.batch_first ? std::vector<int64_t>{B, D, H} : std::vector<int64_t>{D, B, H});
        Tensor t = make_uninitialized_tensor(DType::F32, std::move(shape));
        float* out = t.mutable_values<float>().data();
        if (g.batch_first) {
            std::vector<float> swapped = swap_leading(v.data(), lead, B, H);
            std::copy(swapped.begin(), swapped.end(), out);
        } else {
            std::copy(v.begin(), v.end(), out);
        }
        return from_f32(std::move(t), x0.dtype);
    };
    for (size_t k = 0; k < c.node.outputs.size(); ++k) {
        if (c.node.outputs[k].empty())
            c.outputs.emplace_back();
        else if (k == 0)
            c.outputs.push_back(output(ys, true));
        else
            c.outputs.push_back(output(k == 1 ? hs : cs, false));
    }
}

}  // namespace

void op_rnn(OpContext& c) {
    run_recurrent(c, Cell::Rnn);
}
void op_gru(OpContext& c) {
    run_recurrent(c, Cell::Gru);
}
void op_lstm(OpContext& c) {
    run_recurrent(c, Cell::Lstm);
}

}  // namespace ep::rt
