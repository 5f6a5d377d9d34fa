// Progress bar / progress lines (contract in progress.h).
#include "ir/progress.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <ostream>

#include <sys/ioctl.h>
#include <unistd.h>

namespace ep {

struct Progress::Step::State {
    Progress* owner = nullptr;
    std::string label;
    std::string unit;
    uint64_t total = 0;
    uint64_t done = 0;
    std::string detail;
    double start = 0;
    double last_line = 0;  // Lines: when the last line about this step was printed
    bool finished = false;
    int uncaught = 0;  // std::uncaught_exceptions() when the step began
};

namespace {

constexpr int kMinColumns = 20;
constexpr int kMaxBarWidth = 20;  // the rest of the line is for the detail
constexpr int kMinBarWidth = 10;
constexpr const char* kClearToEnd = "\x1b[K";

double steady_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

int terminal_columns() {
    if (const char* env = std::getenv("COLUMNS")) {
        char* end = nullptr;
        long v = std::strtol(env, &end, 10);
        if (end != env && *end == '\0' && v >= kMinColumns && v <= 1000) return static_cast<int>(v);
    }
    winsize ws{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= kMinColumns) return ws.ws_col;
    return 80;
}

// "16/32 samples" or, with an unknown total, "17 samples". `pad`: the count is as wide as the
// total (" 7/32"), so the bar does not move as the count grows.
std::string count_text(uint64_t done, uint64_t total, const std::string& unit, bool pad = false) {
    std::string s = std::to_string(done);
    if (total > 0) {
        std::string t = std::to_string(total);
        if (pad && s.size() < t.size()) s.insert(0, t.size() - s.size(), ' ');
        s += "/" + t;
    }
    if (!unit.empty()) s += " " + unit;
    return s;
}

// Estimated seconds left from the mean time per unit so far; negative when unknown.
double seconds_left(uint64_t done, uint64_t total, double elapsed) {
    if (total == 0 || done == 0) return -1;
    if (done >= total) return 0;
    return elapsed / static_cast<double>(done) * static_cast<double>(total - done);
}

int percent(uint64_t done, uint64_t total) {
    if (total == 0) return 0;
    return static_cast<int>(static_cast<double>(std::min(done, total)) * 100.0 /
                            static_cast<double>(total));
}

// "6.1 s" below a minute, else "2:05".
std::string duration_text(double seconds) {
    if (!(seconds >= 0)) seconds = 0;
    if (seconds < 60) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f s", seconds);
        return buf;
    }
    return format_clock(seconds);
}

// At most `width` characters: "abc...".
std::string fit(std::string s, size_t width) {
    if (s.size() <= width) return s;
    if (width <= 3) return s.substr(0, width);
    return s.substr(0, width - 3) + "...";
}

}  // namespace

ProgressMode progress_mode_for(int fd, bool quiet) {
    if (quiet) return ProgressMode::Off;
    if (isatty(fd) != 1) return ProgressMode::Lines;
    const char* term = std::getenv("TERM");
    if (term && std::strcmp(term, "dumb") == 0) return ProgressMode::Lines;
    return ProgressMode::Bar;
}

std::string format_clock(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "-:--";
    if (seconds > 359999) seconds = 359999;  // 99:59:59
    auto total = static_cast<uint64_t>(std::llround(seconds));
    uint64_t h = total / 3600, m = total / 60 % 60, s = total % 60;
    char buf[32];
    if (h > 0)
        std::snprintf(buf, sizeof buf, "%llu:%02llu:%02llu", static_cast<unsigned long long>(h),
                      static_cast<unsigned long long>(m), static_cast<unsigned long long>(s));
    else
        std::snprintf(buf, sizeof buf, "%llu:%02llu", static_cast<unsigned long long>(m),
                      static_cast<unsigned long long>(s));
    return buf;
}

// --- Progress ----------------------------------------------------------------------------

Progress::Progress(ProgressMode mode, std::ostream& out)
    : Progress(mode, out, steady_seconds, terminal_columns()) {
    if (mode_ == ProgressMode::Bar) start_ticker();
}

Progress::Progress(ProgressMode mode, std::ostream& out, Clock clock, int columns)
    : mode_(mode), out_(out), clock_(std::move(clock)), columns_(std::max(columns, kMinColumns)) {}

Progress::~Progress() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    stop_cv_.notify_all();
    if (ticker_.joinable()) ticker_.join();
    std::lock_guard lock(mutex_);
    for (auto* s : active_) s->owner = nullptr;  // a Step outliving us becomes inert
    active_.clear();
    if (bar_shown_) out_ << "\n" << std::flush;
}

void Progress::start_ticker() {
    ticker_ = std::thread([this] {
        std::unique_lock lock(mutex_);
        while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(100),
                                  [this] { return stopping_; })) {
            lock.unlock();
            tick();
            lock.lock();
        }
    });
}

void Progress::tick() {
    if (mode_ != ProgressMode::Bar) return;
    std::lock_guard lock(mutex_);
    if (active_.empty()) return;
    double since = clock_() - last_draw_;
    if ((dirty_ && since >= kBarInterval) || since >= 1.0) draw_bar_locked(true);
}

Progress::Step Progress::step(std::string label, uint64_t total, std::string unit) {
    Step step;
    step.state_ = std::make_unique<Step::State>();
    auto& s = *step.state_;
    s.owner = this;
    s.label = std::move(label);
    s.unit = std::move(unit);
    s.total = total;
    s.uncaught = std::uncaught_exceptions();
    std::lock_guard lock(mutex_);
    s.start = s.last_line = clock_();
    active_.push_back(&s);
    if (mode_ == ProgressMode::Lines) {
        std::string line = "edgepack: " + s.label;
        if (total > 0) line += ": " + count_text(total, 0, s.unit);
        out_ << line << "\n" << std::flush;
    } else if (mode_ == ProgressMode::Bar) {
        draw_bar_locked(true);
    }
    return step;
}

void Progress::log(std::string_view line) {
    if (mode_ == ProgressMode::Off) return;
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    std::lock_guard lock(mutex_);
    if (mode_ == ProgressMode::Bar) clear_bar_locked();
    out_ << line << "\n";
    if (mode_ == ProgressMode::Bar)
        draw_bar_locked(true);
    else
        out_ << std::flush;
}

void Progress::advance_locked(Step::State& s, uint64_t n) {
    if (s.finished) return;
    s.done += n;
    if (mode_ == ProgressMode::Bar) {
        draw_bar_locked(false);
    } else if (mode_ == ProgressMode::Lines) {
        double now = clock_();
        if (now - s.last_line >= kLineInterval) {
            s.last_line = now;
            out_ << progress_line(s, now) << "\n" << std::flush;
        }
    }
}

void Progress::finish_locked(Step::State& s) {
    if (s.finished) return;
    s.finished = true;
    active_.erase(std::remove(active_.begin(), active_.end(), &s), active_.end());
    if (mode_ == ProgressMode::Off) return;
    double elapsed = clock_() - s.start;
    // Finished by a destructor while an exception unwinds: the step did not complete.
    bool stopped = std::uncaught_exceptions() > s.uncaught;
    std::string summary = count_text(s.done, s.total, s.unit) +
                          (stopped ? ", stopped after " : " in ") + duration_text(elapsed);
    if (mode_ == ProgressMode::Lines) {
        out_ << "edgepack: " << s.label << ": " << summary << "\n" << std::flush;
        return;
    }
    out_ << "\r" << s.label << "  " << summary << kClearToEnd << "\n";
    bar_shown_ = false;
    if (active_.empty())
        out_ << std::flush;
    else
        draw_bar_locked(true);  // the enclosing step again
}

void Progress::clear_bar_locked() {
    if (!bar_shown_) return;
    out_ << "\r" << kClearToEnd;
    bar_shown_ = false;
}

void Progress::draw_bar_locked(bool force) {
    if (active_.empty()) return;
    double now = clock_();
    if (!force && now - last_draw_ < kBarInterval) {
        dirty_ = true;
        return;
    }
    dirty_ = false;
    last_draw_ = now;
    ++spin_;
    out_ << "\r" << bar_line(*active_.back(), now) << kClearToEnd << std::flush;
    bar_shown_ = true;
}

std::string Progress::bar_line(const Step::State& s, double now) const {
    const size_t width = static_cast<size_t>(columns_) - 1;  // the last column would wrap
    const double elapsed = now - s.start;
    std::string count = count_text(s.done, s.total, s.unit, true);
    std::string line;
    if (s.total == 0) {
        static constexpr char kSpinner[] = {'|', '/', '-', '\\'};
        line = s.label + "  " + kSpinner[spin_ % 4] + " " + count + "  " + format_clock(elapsed) +
               " elapsed";
    } else {
        char pct[8];
        std::snprintf(pct, sizeof pct, "%3d%%", percent(s.done, s.total));
        std::string tail = "  " + count + "  " + pct + "  " +
                           format_clock(seconds_left(s.done, s.total, elapsed)) + " left";
        // label + "  [" + bar + "]" + tail
        size_t fixed = s.label.size() + 4 + tail.size();
        size_t bar = width > fixed ? std::min<size_t>(width - fixed, kMaxBarWidth) : 0;
        if (bar >= static_cast<size_t>(kMinBarWidth)) {
            size_t filled = static_cast<size_t>(static_cast<double>(bar) *
                                                static_cast<double>(std::min(s.done, s.total)) /
                                                static_cast<double>(s.total));
            line = s.label + "  [" + std::string(filled, '#') + std::string(bar - filled, '-') +
                   "]" + tail;
        } else {
            line = s.label + tail;
        }
    }
    if (!s.detail.empty() && line.size() + 2 + 4 <= width)
        line += "  " + fit(s.detail, width - line.size() - 2);
    return fit(std::move(line), width);
}

std::string Progress::progress_line(const Step::State& s, double now) const {
    const double elapsed = now - s.start;
    std::string line = "edgepack: " + s.label + ": " + count_text(s.done, s.total, s.unit);
    if (s.total > 0)
        line += " (" + std::to_string(percent(s.done, s.total)) + "%), " +
                format_clock(seconds_left(s.done, s.total, elapsed)) + " left";
    else
        line += ", " + format_clock(elapsed) + " elapsed";
    if (!s.detail.empty()) line += ", " + s.detail;
    return line;
}

// --- Step --------------------------------------------------------------------------------

Progress::Step::Step() = default;

Progress::Step::Step(Step&& other) noexcept = default;

Progress::Step& Progress::Step::operator=(Step&& other) noexcept {
    if (this != &other) {
        try {
            finish();
        } catch (...) {
        }
        state_ = std::move(other.state_);
    }
    return *this;
}

Progress::Step::~Step() {
    try {
        finish();
    } catch (...) {  // a failing stream must not terminate an unwinding program
    }
}

void Progress::Step::advance(uint64_t n) {
    if (!state_ || !state_->owner) return;
    std::lock_guard lock(state_->owner->mutex_);
    state_->owner->advance_locked(*state_, n);
}

void Progress::Step::set_detail(std::string detail) {
    if (!state_ || !state_->owner) return;
    Progress& owner = *state_->owner;
    std::lock_guard lock(owner.mutex_);
    state_->detail = std::move(detail);
    if (owner.mode_ == ProgressMode::Bar && !state_->finished) owner.draw_bar_locked(false);
}

void Progress::Step::finish() {
    if (!state_ || !state_->owner) return;
    std::lock_guard lock(state_->owner->mutex_);
    state_->owner->finish_locked(*state_);
}

Progress::Step progress_step(Progress* progress, std::string label, uint64_t total,
                             std::string unit) {
    if (!progress) return {};
    return progress->step(std::move(label), total, std::move(unit));
}

}  // namespace ep
