// Streaming compression of weight checkpoints (contract in stream_compress.h).
#include "compressor/stream_compress.h"

#include <chrono>
#include <ostream>

#include "formats/safetensors.h"
#include "formats/safetensors_quant.h"
#include "ir/error.h"
#include "passes/registry.h"

namespace ep {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Passes writes through to `inner`, adding the time they take to `*seconds`: what an
// item's writer spends outside them is the pass's own work.
class TimedSink final : public ByteSink {
  public:
    TimedSink(ByteSink& inner, double* seconds) : inner_(inner), seconds_(seconds) {}
    void write(std::span<const std::byte> bytes) override {
        auto start = Clock::now();
        inner_.write(bytes);
        *seconds_ += seconds_since(start);
    }
    using ByteSink::write;
    [[nodiscard]] uint64_t position() const override { return inner_.position(); }

  private:
    ByteSink& inner_;
    double* seconds_;
};

// The plan line without its "[i/N] " prefix.
std::string plan_label(const std::string& line) {
    auto at = line.find("] ");
    return line.starts_with("[") && at != std::string::npos ? line.substr(at + 2) : line;
}

}  // namespace

std::optional<StreamPlan> plan_stream_compress(const Recipe& recipe, const Model& model,
                                               const std::filesystem::path& output) {
    if (recipe.passes.size() != 1) return std::nullopt;
    const PassConfig& config = recipe.passes[0];
    auto pass = create_pass(config.name);
    if (!pass) return std::nullopt;
    std::string who = cat(config.path, " (", config.name, ")");
    with_context(cat(recipe.what, ": ", who), [&] {
        pass->configure(config.options);
        pass->read_files(pass_files(recipe));
    });
    return plan_stream_pass(config.path, std::move(pass), model, output);
}

std::optional<StreamPlan> plan_stream_pass(std::string path, std::unique_ptr<Pass> pass,
                                           const Model& model,
                                           const std::filesystem::path& output) {
    const auto ext = output.extension();
    if (ext != ".epk" && ext != ".safetensors") return std::nullopt;
    if (!model.graph.nodes.empty()) return std::nullopt;
    std::string name(pass->name());
    auto plan =
        with_context(cat(path, " (", name, ")"), [&] { return pass->plan_streaming(model); });
    if (!plan) return std::nullopt;
    return StreamPlan{std::move(path), std::move(name), std::move(pass), std::move(*plan)};
}

PassRecord run_stream_compress(const Model& model, const StreamPlan& plan,
                               const std::filesystem::path& output, const SaveOptions& save,
                               bool progress, std::ostream& log, StreamTimes& times) {
    const std::string who = cat(plan.path, " (", plan.name, ")");
    const auto start = Clock::now();
    const size_t n = plan.plan.items.size();
    size_t done = 0;
    double pass_seconds = 0.0, item_write_seconds = 0.0;

    // The model to write: the input's tensors (views, not copied), with the planned ones
    // replaced by the pass's tensors as the writer reaches them.
    Model out_model = model;
    StreamedTensors streamed;
    for (const auto& item : plan.plan.items) {
        auto index = static_cast<size_t>(item.source - model.graph.initializers.data());
        if (index >= out_model.graph.initializers.size())
            throw InternalError(cat(who, ": the plan's tensor is not an initializer"));
        StreamedTensor s;
        s.header = item.header;
        s.header.data = {};
        s.bytes = item.bytes;
        const auto* it = &item;
        s.write = [&, it](ByteSink& sink) {
            ++done;
            if (progress)
                log << "edgepack:   " << plan.plan.action << " [" << done << "/" << n << "] "
                    << plan_label(it->line) << "\n"
                    << std::flush;
            TimedSink timed(sink, &item_write_seconds);
            auto item_start = Clock::now();
            with_context(who, [&] { it->write(timed); });
            pass_seconds += seconds_since(item_start);
        };
        if (s.header.expected_bytes() != s.bytes)
            throw InternalError(cat(who, ": tensor '", item.source->name, "': planned ", s.bytes,
                                    " bytes, the header needs ", s.header.expected_bytes()));
        if (!streamed.emplace(&out_model.graph.initializers[index], std::move(s)).second)
            throw InternalError(cat(who, ": tensor '", item.source->name, "' planned twice"));
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
        throw InternalError(cat(who, ": the writer wrote ", done, " of ", n, " planned tensors"));

    pass_seconds -= item_write_seconds;
    times.pass_seconds = pass_seconds;
    times.write_seconds = seconds_since(start) - pass_seconds;
    PassRecord record;
    record.path = plan.path;
    record.name = plan.name;
    record.result = plan.plan.result;
    record.seconds = pass_seconds;
    return record;
}

}  // namespace ep
