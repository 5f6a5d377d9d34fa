// The progress reporter (ir/progress.h): bar text, ETA, throttling, the final
// line, Lines mode (no '\r' or escape codes, one progress line per 10 s), Off, log(); and the
// CLI: `edgepack validate` / `run` / `bench` with stderr captured (not a terminal) print
// plain lines, not one line per sample, and nothing with --quiet.
#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <thread>

#include "compressor/calibration_data.h"
#include "formats/model_io.h"
#include "ir/progress.h"
#include "passes/registry.h"
#include "support.h"

using namespace ep;

namespace {

// A clock the test sets by hand.
struct FakeClock {
    double now = 0;
    Progress::Clock fn() {
        return [this] { return now; };
    }
};

size_t count(const std::string& s, std::string_view what) {
    size_t n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
    return n;
}

// The text after the last '\r' (what a terminal shows on the bar's line), without ESC [K.
std::string last_bar(const std::string& s) {
    auto r = s.rfind('\r');
    std::string line = r == std::string::npos ? s : s.substr(r + 1);
    auto esc = line.find("\x1b[K");
    if (esc != std::string::npos) line.erase(esc, 3);
    return line;
}

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// input f32 [N, 4] -> Mul by 2 -> output.
Model tiny_model() {
    Model m;
    m.opset_imports = {{"", 17}};
    ValueType t;
    t.elem = DType::F32;
    t.shape = std::vector<Dim>{{std::nullopt, "n", ""}, {4, "", ""}};
    m.graph.inputs.push_back({"input", t, ""});
    m.graph.outputs.push_back({"output", std::nullopt, ""});
    float s[1] = {2.0f};
    m.graph.initializers.push_back(make_f32_tensor("scale", {}, s));
    Node mul;
    mul.op_type = "Mul";
    mul.inputs = {"input", "scale"};
    mul.outputs = {"output"};
    m.graph.nodes = {mul};
    return m;
}

// x [1, 64] -> MatMul W1 [64, 64] -> Relu -> MatMul W2 [64, 32] -> y: two weights that
// quantize-weights calibrates, each with its own activation.
Model two_matmuls() {
    Model m;
    m.opset_imports = {{"", 17}};
    ValueType t;
    t.elem = DType::F32;
    t.shape = std::vector<Dim>{{1, "", ""}, {64, "", ""}};
    m.graph.inputs.push_back({"x", t, ""});
    m.graph.outputs.push_back({"y", std::nullopt, ""});
    auto weights = [](const std::string& name, int64_t rows, int64_t cols) {
        std::vector<float> v(static_cast<size_t>(rows * cols));
        for (size_t i = 0; i < v.size(); ++i)
            v[i] = static_cast<float>((i * 7919 % 201)) / 100.0f - 1.0f;
        return make_f32_tensor(name, {rows, cols}, v);
    };
    m.graph.initializers.push_back(weights("W1", 64, 64));
    m.graph.initializers.push_back(weights("W2", 64, 32));
    Node a, r, b;
    a.op_type = "MatMul";
    a.inputs = {"x", "W1"};
    a.outputs = {"h"};
    r.op_type = "Relu";
    r.inputs = {"h"};
    r.outputs = {"hr"};
    b.op_type = "MatMul";
    b.inputs = {"hr", "W2"};
    b.outputs = {"y"};
    m.graph.nodes = {a, r, b};
    return m;
}

}  // namespace

TEST_CASE("progress bar: bar, count, percent and ETA from elapsed/done", "[progress]") {
    FakeClock clock;
    std::ostringstream out;
    Progress p(ProgressMode::Bar, out, clock.fn(), 80);
    auto step = p.step("calibration", 32, "samples");
    // Drawn at once, before any unit is done: no ETA yet.
    CHECK(last_bar(out.str()) ==
          "calibration  [--------------------]   0/32 samples    0%  -:-- left");
    clock.now = 3.0;
    step.advance(16);
    // 16 units in 3 s: 16 more take 3 s.
    std::string bar = last_bar(out.str());
    CHECK(bar == "calibration  [##########----------]  16/32 samples   50%  0:03 left");
    CHECK(bar.size() <= 79);
    CHECK(out.str().find('\n') == std::string::npos);  // redrawn in place
    CHECK(count(out.str(), "\x1b[K") == 2);            // each draw clears to the end of line

    clock.now = 4.0;
    step.advance(8);  // 24 in 4 s: 8 more take 1.33 s
    CHECK(last_bar(out.str()).find("24/32 samples   75%  0:01 left") != std::string::npos);
    clock.now = 64.0;
    step.advance(1);  // 25 in 64 s: 7 more take 17.9 s
    CHECK(last_bar(out.str()).find("25/32 samples   78%  0:18 left") != std::string::npos);
}

TEST_CASE("progress bar: fits the width, with the detail after the bar", "[progress]") {
    FakeClock clock;
    for (int columns : {20, 40, 60, 80, 132}) {
        INFO("columns " << columns);
        std::ostringstream out;
        Progress p(ProgressMode::Bar, out, clock.fn(), columns);
        auto step = p.step("gptq", 120, "tensors");
        clock.now += 0.5;
        step.set_detail(std::string("model.layers.11.self_attn.q_proj.weight") +
                        std::string(80, 'x'));
        clock.now += 0.5;
        step.advance(30);
        std::string bar = last_bar(out.str());
        INFO("bar: " << bar);
        CHECK(bar.size() <= static_cast<size_t>(columns - 1));
        CHECK(bar.rfind("gptq", 0) == 0);
        if (columns >= 60) {
            CHECK(bar.find(" 30/120 tensors   25%  0:03 left") != std::string::npos);
            CHECK(bar.find("[#") != std::string::npos);
        }
        if (columns >= 80) {
            CHECK(bar.find("  model.layers") != std::string::npos);
            CHECK(bar.size() == static_cast<size_t>(columns - 1));
            CHECK(bar.substr(bar.size() - 3) == "...");
        }
    }
}

TEST_CASE("progress bar: redrawn at most every 100 ms", "[progress]") {
    FakeClock clock;
    std::ostringstream out;
    Progress p(ProgressMode::Bar, out, clock.fn(), 80);
    auto step = p.step("validation", 1000, "samples");
    CHECK(count(out.str(), "\r") == 1);
    for (int i = 0; i < 1000; ++i) {  // 1000 units over 1 s: about 10 redraws, not 1000
        clock.now = 0.001 * (i + 1);
        step.advance();
    }
    size_t draws = count(out.str(), "\r");
    CHECK(draws >= 10);
    CHECK(draws <= 12);
    // Nothing is drawn between redraws: a change 50 ms after a redraw waits...
    clock.now += 0.2;
    step.advance(0);
    auto before = out.str();
    clock.now += 0.05;
    step.set_detail("s999");
    p.tick();
    CHECK(out.str() == before);
    // ... for the next tick 100 ms after the redraw (the background thread's job).
    clock.now += 0.06;
    p.tick();
    CHECK(last_bar(out.str()).find("  s999") != std::string::npos);
    // Without changes, ticks redraw once a second (the times shown move).
    before = out.str();
    clock.now += 0.5;
    p.tick();
    CHECK(out.str() == before);
    clock.now += 0.6;
    p.tick();
    CHECK(out.str() != before);
}

TEST_CASE("progress bar: finish leaves one final line with the time, and finishing is idempotent",
          "[progress]") {
    FakeClock clock;
    std::ostringstream out;
    Progress p(ProgressMode::Bar, out, clock.fn(), 80);
    {
        auto step = p.step("calibration", 32, "samples");
        clock.now = 6.1;
        step.advance(32);
        step.finish();
        auto after = out.str();
        step.finish();
        step.advance(5);
        CHECK(out.str() == after);
    }  // the destructor does not print a second final line
    CHECK(count(out.str(), "\n") == 1);
    CHECK(last_bar(out.str()) == "calibration  32/32 samples in 6.1 s\n");
    CHECK(out.str().substr(out.str().size() - 4) == "\x1b[K\n");

    // Minutes read as m:ss; the destructor finishes a step that was not finished.
    std::ostringstream out2;
    Progress p2(ProgressMode::Bar, out2, clock.fn(), 80);
    {
        auto step = p2.step("awq", 0, "tensors");
        clock.now += 125;
        step.advance(7);
    }
    CHECK(last_bar(out2.str()) == "awq  7 tensors in 2:05\n");
}

TEST_CASE("progress bar: an unknown total shows a spinner, the count and the elapsed time",
          "[progress]") {
    FakeClock clock;
    std::ostringstream out;
    Progress p(ProgressMode::Bar, out, clock.fn(), 80);
    auto step = p.step("capture", 0, "samples");
    clock.now = 65;
    step.advance(17);
    std::string bar = last_bar(out.str());
    CHECK(bar.find("17 samples  1:05 elapsed") != std::string::npos);
    CHECK(bar.find('%') == std::string::npos);
    CHECK(bar.find("left") == std::string::npos);
    CHECK(bar.find('[') == std::string::npos);
}

TEST_CASE("progress bar: log() clears the bar, prints the line and redraws the bar", "[progress]") {
    FakeClock clock;
    std::ostringstream out;
    Progress p(ProgressMode::Bar, out, clock.fn(), 80);
    p.log("before any step");
    CHECK(out.str() == "before any step\n");
    auto step = p.step("validation", 4, "samples");
    clock.now = 1;
    step.advance();
    out.str("");
    p.log("warning: output 'x' is not compared\n");  // a trailing newline is not doubled
    std::string s = out.str();
    CHECK(s.rfind("\r\x1b[Kwarning: output 'x' is not compared\n\r", 0) == 0);
    CHECK(last_bar(s).find("1/4 samples") != std::string::npos);
    CHECK(count(s, "\n") == 1);
}

TEST_CASE("progress bar: a nested step's bar replaces its parent's, which comes back",
          "[progress]") {
    FakeClock clock;
    std::ostringstream out;
    Progress p(ProgressMode::Bar, out, clock.fn(), 80);
    auto outer = p.step("compress", 3, "passes");
    clock.now = 1;
    outer.advance();
    {
        auto inner = p.step("gptq", 2, "tensors");
        CHECK(last_bar(out.str()).rfind("gptq", 0) == 0);
        clock.now = 2;
        inner.advance(2);
    }
    auto lines = lines_of(out.str());
    REQUIRE(lines.size() == 2);  // the inner step's final line, then the outer bar again
    CHECK(last_bar(lines[0] + "\n") == "gptq  2/2 tensors in 1.0 s\n");
    CHECK(last_bar(out.str()).find("compress  [") == 0);
    CHECK(last_bar(out.str()).find("1/3 passes") != std::string::npos);
}

TEST_CASE(
    "progress lines: no carriage return or escapes, a start and an end line, one line per 10 s",
    "[progress]") {
    FakeClock clock;
    std::ostringstream out;
    Progress p(ProgressMode::Lines, out, clock.fn(), 80);
    {
        auto step = p.step("calibration", 40, "samples");
        for (int i = 0; i < 40; ++i) {  // one sample per second: 40 s
            clock.now = i + 1;
            step.set_detail("sample " + std::to_string(i));
            step.advance();
        }
        p.log("a message");
    }
    std::string s = out.str();
    CHECK(s.find('\r') == std::string::npos);
    CHECK(s.find('\x1b') == std::string::npos);
    auto lines = lines_of(s);
    REQUIRE(lines.size() == 7);
    CHECK(lines[0] == "edgepack: calibration: 40 samples");
    CHECK(lines[1] == "edgepack: calibration: 10/40 samples (25%), 0:30 left, sample 9");
    CHECK(lines[2] == "edgepack: calibration: 20/40 samples (50%), 0:20 left, sample 19");
    CHECK(lines[3] == "edgepack: calibration: 30/40 samples (75%), 0:10 left, sample 29");
    CHECK(lines[4] == "edgepack: calibration: 40/40 samples (100%), 0:00 left, sample 39");
    CHECK(lines[5] == "a message");
    CHECK(lines[6] == "edgepack: calibration: 40/40 samples in 40.0 s");

    // A step shorter than 10 s: two lines only, however many units.
    std::ostringstream quick;
    Progress q(ProgressMode::Lines, quick, clock.fn(), 80);
    {
        auto step = q.step("benchmark", 0, "runs");
        for (int i = 0; i < 1000; ++i) {
            clock.now += 0.009;
            step.advance();
        }
    }
    lines = lines_of(quick.str());
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == "edgepack: benchmark");
    CHECK(lines[1] == "edgepack: benchmark: 1000 runs in 9.0 s");
}

TEST_CASE("progress off prints nothing, and a null Progress gives an inert step", "[progress]") {
    FakeClock clock;
    std::ostringstream out;
    Progress p(ProgressMode::Off, out, clock.fn(), 80);
    CHECK(p.mode() == ProgressMode::Off);
    {
        auto step = p.step("calibration", 3, "samples");
        clock.now = 100;
        step.set_detail("x");
        step.advance(3);
        p.log("hello");
    }
    CHECK(out.str().empty());

    auto inert = progress_step(nullptr, "calibration", 3, "samples");
    inert.advance();
    inert.set_detail("y");
    inert.finish();
    Progress::Step none;
    none.advance();

    // A moved-from step is inert; assigning over a live step finishes it.
    std::ostringstream lines;
    Progress l(ProgressMode::Lines, lines, clock.fn(), 80);
    auto a = progress_step(&l, "first", 2);
    auto b = std::move(a);
    a.advance(5);
    b.advance(1);
    b = l.step("second", 1);
    auto got = lines_of(lines.str());
    REQUIRE(got.size() == 3);
    CHECK(got[0] == "edgepack: first: 2");
    CHECK(got[1] == "edgepack: second: 1");
    CHECK(got[2] == "edgepack: first: 1/2 in 0.0 s");
}

TEST_CASE("progress: advance() from several threads counts every unit", "[progress]") {
    std::ostringstream out;
    Progress p(ProgressMode::Bar, out);
    {
        auto step = p.step("gptq", 4000, "columns");
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&] {
                for (int i = 0; i < 1000; ++i) step.advance();
            });
        for (auto& t : threads) t.join();
    }
    CHECK(last_bar(out.str()).rfind("gptq  4000/4000 columns in ", 0) == 0);
}

TEST_CASE("progress: format_clock and the mode for a file descriptor", "[progress]") {
    CHECK(format_clock(0) == "0:00");
    CHECK(format_clock(3.4) == "0:03");
    CHECK(format_clock(59.6) == "1:00");
    CHECK(format_clock(754) == "12:34");
    CHECK(format_clock(3723) == "1:02:03");
    CHECK(format_clock(-1) == "-:--");
    CHECK(format_clock(std::numeric_limits<double>::infinity()) == "-:--");

    CHECK(progress_mode_for(STDERR_FILENO, true) == ProgressMode::Off);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    CHECK(progress_mode_for(fds[1], false) == ProgressMode::Lines);
    close(fds[0]);
    close(fds[1]);
}

TEST_CASE("progress: a pseudo-terminal gets the bar, unless TERM=dumb", "[progress]") {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0) EP_SKIP("no pseudo-terminal here (posix_openpt failed)");
    if (grantpt(master) != 0 || unlockpt(master) != 0) {
        close(master);
        EP_SKIP("no pseudo-terminal here (grantpt or unlockpt failed)");
    }
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    REQUIRE(slave >= 0);
    const char* old = std::getenv("TERM");
    std::string saved = old ? old : "";
    setenv("TERM", "xterm", 1);
    CHECK(progress_mode_for(slave, false) == ProgressMode::Bar);
    CHECK(progress_mode_for(slave, true) == ProgressMode::Off);
    setenv("TERM", "dumb", 1);
    CHECK(progress_mode_for(slave, false) == ProgressMode::Lines);
    if (old)
        setenv("TERM", saved.c_str(), 1);
    else
        unsetenv("TERM");
    close(slave);
    close(master);
}

TEST_CASE("validate, run and bench with stderr captured print plain lines, --quiet nothing",
          "[progress][cli]") {
    test::TempDir dir;
    save_model(tiny_model(), dir / "tiny.onnx");
    auto model = (dir / "tiny.onnx").string();
    auto plain = [](const test::RunResult& r) {
        INFO(r.err);
        CHECK(r.exit_code == 0);
        CHECK(r.err.find('\r') == std::string::npos);
        CHECK(r.err.find('\x1b') == std::string::npos);
    };

    auto v = test::run_edgepack(
        {"validate", "--reference", model, "--candidate", model, "--samples", "25"});
    plain(v);
    CHECK(v.err.find("edgepack: validation: 25 samples\n") != std::string::npos);
    CHECK(v.err.find("edgepack: validation: 25/25 samples in ") != std::string::npos);
    CHECK(lines_of(v.err).size() <= 3);                // not one per sample
    CHECK(v.out.find("output") != std::string::npos);  // the report is on stdout as before

    auto r = test::run_edgepack({"run", model, "--samples", "25", "--out", (dir / "out").string()});
    plain(r);
    CHECK(std::filesystem::exists(dir / "out" / "sample_24" / "output.npy"));
    CHECK(r.err.find("edgepack: run: 25 samples\n") != std::string::npos);
    CHECK(r.err.find("sample 3") == std::string::npos);
    CHECK(lines_of(r.err).size() <= 5);

    auto b = test::run_edgepack({"bench", model, "--warmup", "2", "--runs", "30", "--json"});
    plain(b);
    CHECK(b.err.find("edgepack: benchmark: 32 runs\n") != std::string::npos);
    CHECK(b.out.find("\"latencies_ms\"") != std::string::npos);

    for (std::vector<std::string> args :
         {std::vector<std::string>{"validate", "--reference", model, "--candidate", model,
                                   "--samples", "3", "--quiet"},
          std::vector<std::string>{"run", model, "--samples", "3", "--out",
                                   (dir / "quiet").string(), "-q"},
          std::vector<std::string>{"bench", model, "--runs", "3", "--quiet"}}) {
        auto q = test::run_edgepack(args);
        INFO(args[0] << ": " << q.err);
        CHECK(q.exit_code == 0);
        CHECK(q.err.empty());
        if (args[0] != "run") CHECK_FALSE(q.out.empty());  // --quiet silences stderr only
    }
    CHECK(std::filesystem::exists(dir / "quiet" / "sample_2" / "output.npy"));
}

TEST_CASE("quantize-weights reports calibration and gptq / awq progress per sample and tensor",
          "[progress][gptq][awq]") {
    CalibrationConfig cc;  // seeded random inputs
    cc.samples = 6;
    auto provider = make_calibration_provider(cc, "r.json");
    for (const char* method : {"gptq", "awq"}) {
        INFO(method);
        FakeClock clock;
        std::ostringstream out;
        Progress progress(ProgressMode::Lines, out, clock.fn(), 80);
        PassContext ctx;
        ctx.calibration = provider.get();
        ctx.progress = &progress;
        auto pass = create_pass("quantize-weights");
        REQUIRE(pass != nullptr);
        pass->configure({{"bits", 4}, {"method", method}});
        Model m = two_matmuls();
        PassResult r = pass->run(m, ctx);
        CHECK(r.rewrites == 2);
        auto lines = lines_of(out.str());
        std::string m_name = method;
        CHECK(lines == std::vector<std::string>{
                           "edgepack: calibration: 6 samples",
                           "edgepack: calibration: 6/6 samples in 0.0 s",
                           "edgepack: " + m_name + ": 2 tensors",
                           "edgepack: " + m_name + ": 2/2 tensors in 0.0 s",
                       });
    }
    // Without a Progress the pass prints nothing (and does the same).
    PassContext quiet;
    quiet.calibration = provider.get();
    auto pass = create_pass("quantize-weights");
    pass->configure({{"bits", 4}, {"method", "gptq"}});
    Model m = two_matmuls();
    CHECK(pass->run(m, quiet).rewrites == 2);
}

TEST_CASE("progress: a step ended by an exception says it stopped", "[progress]") {
    FakeClock clock;
    std::ostringstream out;
    Progress p(ProgressMode::Lines, out, clock.fn(), 80);
    try {
        auto step = p.step("validation", 8, "samples");
        clock.now = 2.5;
        step.advance(3);
        throw InputError("sample 3: bad");
    } catch (const InputError&) {
    }
    auto lines = lines_of(out.str());
    REQUIRE(lines.size() == 2);
    CHECK(lines[1] == "edgepack: validation: 3/8 samples, stopped after 2.5 s");
}
