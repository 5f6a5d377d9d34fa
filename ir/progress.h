// Progress of long steps (calibration, GPTQ/AWQ, validation, benchmark) on stderr.
//
// Three modes, chosen once per command by progress_mode_for(STDERR_FILENO, quiet):
//   Bar    stderr is a terminal (and TERM is not "dumb"): one line redrawn in place with '\r'
//          and clear-to-end-of-line (ESC [K), at most every 100 ms, fitting $COLUMNS (else the
//          terminal's width, else 80) minus one column:
//            calibration  [##########----------]  16/32 samples  50%  0:03 left  detail
//          A step of unknown total (0) shows a spinner, the count and the elapsed time.
//          When a step finishes the bar is replaced by "calibration  32/32 samples in 6.1 s"
//          ("..., stopped after 6.1 s" when an exception unwinding past the Step ended it).
//   Lines  anything else (CI logs, pipes, files): never '\r' or an escape code. One line when a
//          step starts ("edgepack: calibration: 32 samples"), at most one progress line per
//          10 s while it runs, and one when it finishes, with the time.
//   Off    --quiet: nothing at all, log() included.
// Progress writes only to the stream it was given (the CLI gives std::cerr), never stdout.
//
// In Bar mode with the steady clock a background thread calls tick() every 100 ms, so a
// change that came too soon after the last redraw is shown 100 ms later, and the ETA and the
// elapsed time keep moving while a unit takes long; with an injected clock, tests call tick().
// While a step is shown, other stderr output should go through log().
//
// Steps may nest (a pass's step inside the command's step): the bar shows the innermost
// unfinished step and redraws its parent when it finishes. A Step must not outlive its
// Progress. Every member function takes the Progress's lock, so Step::advance() may be
// called from worker threads (OpenMP loops): call it per unit of work (a sample, a tensor),
// not per element.
//
// A null Progress* means "print nothing": progress_step(nullptr, ...) gives an inert Step, so
// code that received an optional Progress* needs no branches.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ep {

enum class ProgressMode : uint8_t { Off, Lines, Bar };

// Off when quiet; Bar when `fd` is a terminal and $TERM is not "dumb"; else Lines.
[[nodiscard]] ProgressMode progress_mode_for(int fd, bool quiet);

class Progress {
  public:
    // Seconds from any fixed origin, non-decreasing (tests inject a fake clock).
    using Clock = std::function<double()>;

    static constexpr double kBarInterval = 0.1;    // seconds between bar redraws
    static constexpr double kLineInterval = 10.0;  // seconds between progress lines (Lines)

    // Steady clock; the width is $COLUMNS, else stderr's terminal width, else 80.
    Progress(ProgressMode mode, std::ostream& out);
    // For tests: an injected clock and a fixed width (columns >= 20); no background thread.
    Progress(ProgressMode mode, std::ostream& out, Clock clock, int columns = 80);
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    class Step {
      public:
        Step();  // inert: every call does nothing
        Step(Step&& other) noexcept;
        Step& operator=(Step&& other) noexcept;  // finishes the step it held
        Step(const Step&) = delete;
        Step& operator=(const Step&) = delete;
        ~Step();  // finishes

        void advance(uint64_t n = 1);
        // Shown after the bar (Bar) or on the progress lines (Lines), e.g. the tensor name.
        void set_detail(std::string detail);
        // Prints the final line; later calls (and the destructor) do nothing.
        void finish();

      private:
        friend class Progress;
        struct State;
        std::unique_ptr<State> state_;
    };

    // A step of `total` units (0 = unknown: no bar and no ETA, a spinner and a count).
    // `unit` names what is counted ("samples"); empty shows bare numbers.
    [[nodiscard]] Step step(std::string label, uint64_t total, std::string unit = "");
    // A normal message line (no trailing newline needed). In Bar mode it clears the bar,
    // prints the line and redraws the bar; Off prints nothing.
    void log(std::string_view line);
    [[nodiscard]] ProgressMode mode() const { return mode_; }
    // Bar: redraws the bar when a change is waiting and 100 ms have passed since the last
    // redraw, or when 1 s has passed (the times shown move). Other modes: nothing.
    void tick();

  private:
    void start_ticker();
    void advance_locked(Step::State& s, uint64_t n);
    void finish_locked(Step::State& s);
    void draw_bar_locked(bool force);
    void clear_bar_locked();
    [[nodiscard]] std::string bar_line(const Step::State& s, double now) const;
    [[nodiscard]] std::string progress_line(const Step::State& s, double now) const;

    ProgressMode mode_;
    std::ostream& out_;
    Clock clock_;
    int columns_;
    std::mutex mutex_;
    std::vector<Step::State*> active_;  // unfinished steps, innermost last
    bool bar_shown_ = false;            // a bar line is on screen (without newline)
    bool dirty_ = false;                // a change is not on screen yet (throttled)
    double last_draw_ = -1e300;
    unsigned spin_ = 0;
    std::condition_variable stop_cv_;
    bool stopping_ = false;
    std::thread ticker_;  // Bar mode with the steady clock only
};

// progress ? progress->step(...) : an inert Step.
[[nodiscard]] Progress::Step progress_step(Progress* progress, std::string label, uint64_t total,
                                           std::string unit = "");

// "0:07", "12:34", "1:02:03" (negative or non-finite: "-:--").
[[nodiscard]] std::string format_clock(double seconds);

}  // namespace ep
