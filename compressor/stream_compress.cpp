// Streaming compression of weight checkpoints (contract in stream_compress.h).
#include "compressor/stream_compress.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ostream>

#include "ir/checked.h"
#include "ir/error.h"
#include "formats/safetensors.h"
#include "formats/safetensors_quant.h"
#include "passes/registry.h"

namespace ep {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Source elements [first, first + count) of `t` as floats (f32, f16, bf16).
void to_floats(const Tensor& t, size_t first, size_t count, float* out) {
    auto bytes = t.data.bytes();
    switch (t.dtype) {
        case DType::F32:
            std::memcpy(out, bytes.data() + first * 4, count * 4);
            return;
        case DType::F16:
        case DType::BF16: {
            const auto* v = reinterpret_cast<const uint16_t*>(bytes.data()) + first;
            if (t.dtype == DType::F16)
                for (size_t i = 0; i < count; ++i) out[i] = half_to_float(v[i]);
            else
                for (size_t i = 0; i < count; ++i) out[i] = bf16_to_float(v[i]);
            return;
        }
        default:
            throw InternalError(cat("tensor '", t.name, "': streaming quantization reads f32, ",
                                    "f16 or bf16, found ", dtype_name(t.dtype)));
    }
}

}  // namespace

void write_rtn_chunked(const Tensor& t, const Encoding& e, ByteSink& out, size_t chunk_floats,
                       double* seconds) {
    const std::string what = cat("tensor '", t.name, "'");
    check_encoding(e, what);
    if (e.axis != 1)
        throw InternalError(cat(what, ": streaming quantization takes axis 1 (rows = shape[0])"));
    t.check_consistent();
    const auto dims = encoded_dims(e, t.shape, what);
    const int64_t rows = dims.rows, cols = dims.cols;
    const auto total = encoded_bytes(e, rows, cols);
    if (!total) throw InputError(cat(what, ": the encoded size overflows"));
    if (rows == 0 || cols == 0) {
        out.write_zeros(static_cast<size_t>(*total));
        return;
    }
    const size_t element_bytes = static_cast<size_t>(traits(t.dtype).bits / 8);
    const auto ucols = static_cast<size_t>(cols);
    const int64_t chunk_rows =
        std::max<int64_t>(1, static_cast<int64_t>(std::max<size_t>(chunk_floats, 1) / ucols));
    std::vector<float> floats(static_cast<size_t>(std::min(rows, chunk_rows)) * ucols);
    // int8c: every row's codes first, then every row's f32 scale (encoding.h).
    const bool per_channel = !traits(e.scheme).grouped;
    std::vector<std::byte> scales;
    if (per_channel) scales.reserve(static_cast<size_t>(rows) * 4);

    for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
        const int64_t n = std::min(chunk_rows, rows - r0);
        const size_t first = static_cast<size_t>(r0) * ucols;
        const size_t count = static_cast<size_t>(n) * ucols;
        auto start = std::chrono::steady_clock::now();
        to_floats(t, first, count, floats.data());
        std::vector<std::byte> q = quantize_rtn(e, std::span(floats.data(), count), n, cols);
        if (seconds) *seconds += seconds_since(start);
        if (per_channel) {
            out.write(std::span<const std::byte>(q).first(count));
            scales.insert(scales.end(), q.end() - n * 4, q.end());
        } else {
            out.write(std::span<const std::byte>(q));
        }
        if (t.data.is_view())
            t.data.file()->release(t.data.file_offset() + first * element_bytes,
                                   count * element_bytes);
    }
    if (per_channel) {
        const uint64_t codes = static_cast<uint64_t>(rows) * ucols;
        out.write_zeros(static_cast<size_t>((4 - codes % 4) % 4));
        out.write(std::span<const std::byte>(scales));
    }
    // Pages the chunk boundaries split (release() keeps partial pages) go too.
    if (t.data.is_view()) t.data.file()->release(t.data.file_offset(), t.data.size());
}

std::optional<StreamPlan> plan_stream_compress(const Recipe& recipe, const Model& model,
                                               const std::filesystem::path& output) {
    const auto ext = output.extension();
    if (ext != ".epk" && ext != ".safetensors") return std::nullopt;
    if (!model.graph.nodes.empty() || recipe.passes.size() != 1) return std::nullopt;
    const PassConfig& config = recipe.passes[0];
    auto pass = create_pass(config.name);
    if (!pass) return std::nullopt;
    std::string who = cat(config.path, " (", config.name, ")");
    with_context(cat(recipe.what, ": ", who), [&] { pass->configure(config.options); });
    auto plan = with_context(who, [&] { return checkpoint_quantize_plan(*pass, model); });
    if (!plan) return std::nullopt;
    return StreamPlan{config.path, config.name, std::move(*plan)};
}

PassRecord run_stream_compress(const Model& model, const StreamPlan& plan,
                               const std::filesystem::path& output, const SaveOptions& save,
                               bool progress, std::ostream& log, StreamTimes& times) {
    const std::string who = cat(plan.path, " (", plan.name, ")");
    const auto start = std::chrono::steady_clock::now();
    const size_t n = plan.plan.items.size();
    size_t done = 0;
    double quantize_seconds = 0.0;

    // The model to write: the input's tensors (views, not copied), with the planned ones
    // replaced by tensors encoded as the writer reaches them.
    Model out_model = model;
    StreamedTensors streamed;
    for (const auto& item : plan.plan.items) {
        const Tensor* source = item.tensor;
        auto index = static_cast<size_t>(source - model.graph.initializers.data());
        if (index >= out_model.graph.initializers.size())
            throw InternalError(cat(who, ": the plan's tensor is not an initializer"));
        StreamedTensor s;
        s.header.name = source->name;
        s.header.dtype = DType::F32;
        s.header.shape = source->shape;
        s.header.doc_string = source->doc_string;
        s.header.encoding = item.encoding;
        s.bytes = item.new_bytes;
        const auto* it = &item;
        s.write = [&, it, source](ByteSink& sink) {
            ++done;
            if (progress) {
                auto label = it->line.substr(it->line.find("] ") + 2);
                log << "edgepack:   quantize [" << done << "/" << n << "] " << label << "\n"
                    << std::flush;
            }
            with_context(who, [&] {
                write_rtn_chunked(*source, it->encoding, sink, kStreamChunkFloats,
                                  &quantize_seconds);
            });
        };
        if (s.header.expected_bytes() != s.bytes)
            throw InternalError(cat(who, ": tensor '", source->name, "': planned ", s.bytes,
                                    " bytes, the encoding needs ", s.header.expected_bytes()));
        streamed.emplace(&out_model.graph.initializers[index], std::move(s));
    }

    if (progress)
        log << "edgepack: [1/1] " << who << ", streaming " << n << " tensor" << (n == 1 ? "" : "s")
            << " into " << output.string() << "\n"
            << std::flush;
    if (output.extension() == ".epk") {
        EpkWriteOptions options = save.epk;
        options.streamed = &streamed;
        write_epk(out_model, output, options);
    } else {
        with_context(output.string(),
                     [&] { encode_for_safetensors_in_place(out_model, streamed); });
        write_safetensors(out_model, output, &streamed);
    }
    if (done != n)
        throw InternalError(
            cat(who, ": the writer quantized ", done, " of ", n, " planned tensors"));

    times.quantize_seconds = quantize_seconds;
    times.write_seconds = seconds_since(start) - quantize_seconds;
    PassRecord record;
    record.path = plan.path;
    record.name = plan.name;
    record.result = plan.plan.result;
    record.seconds = quantize_seconds;
    return record;
}

}  // namespace ep
