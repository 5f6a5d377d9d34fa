// report.md, report.html and junit.xml from one report JSON (edgepack.report/1).
//
// Markdown and HTML share one document model (headings, paragraphs, tables, charts) built
// once from the JSON, so the two always say the same thing; JUnit is rendered directly.
// Text in the model marks every string that came from the report (names, paths, categories)
// between two sentinel bytes; the Markdown renderer escapes only those parts (generated text
// such as "kl_mean 0.0912 > 0.05" stays readable in the raw comment), the HTML renderer
// escapes everything. Control characters in report strings (the sentinels included) are
// replaced with U+FFFD before they are marked, so a report string cannot forge a sentinel.
#include "compressor/report_render.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ep {

using nlohmann::json;

namespace {

// ---------------------------------------------------------------- reading the JSON safely

const json& null_json() {
    static const json null_value;
    return null_value;
}

// j[key] when j is an object holding key; null otherwise (never throws).
const json& at(const json& j, const char* key) {
    if (!j.is_object()) return null_json();
    auto it = j.find(key);
    return it == j.end() ? null_json() : *it;
}

// The elements of j when it is an array; empty otherwise.
const json& items(const json& j) {
    static const json empty = json::array();
    return j.is_array() ? j : empty;
}

// A number, or one of the strings "inf", "-inf", "nan"; nullopt for null or anything else.
std::optional<double> number(const json& j) {
    if (j.is_number()) return j.get<double>();
    if (j.is_string()) {
        const auto& s = j.get_ref<const std::string&>();
        if (s == "inf") return INFINITY;
        if (s == "-inf") return -INFINITY;
        if (s == "nan") return NAN;
    }
    return std::nullopt;
}

bool finite(const std::optional<double>& v) {
    return v && std::isfinite(*v);
}

// A non-negative integer count (bytes, tensors) when j holds one.
std::optional<uint64_t> count(const json& j) {
    if (j.is_number_unsigned()) return j.get<uint64_t>();
    if (j.is_number_integer()) {
        int64_t v = j.get<int64_t>();
        if (v >= 0) return static_cast<uint64_t>(v);
        return std::nullopt;
    }
    if (j.is_number_float()) {
        double v = j.get<double>();
        if (std::isfinite(v) && v >= 0 && v < 9.0e18 && v == std::floor(v))
            return static_cast<uint64_t>(v);
    }
    return std::nullopt;
}

std::string plain(const json& j);
std::string u(const json& j);

// ---------------------------------------------------------------- formatting

std::string printf_double(const char* format, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

// %.4g, with the non-finite spellings of the JSON and no "-0".
std::string fmt_g(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    if (v == 0) return "0";
    return printf_double("%.4g", v);
}

std::string group_digits(uint64_t v) {
    std::string digits = std::to_string(v);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

// 1 kB = 1000 bytes: "1.4 MB".
std::string short_bytes(double v) {
    static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    size_t u = 0;
    while (std::fabs(v) >= 1000 && u + 1 < std::size(units)) {
        v /= 1000;
        ++u;
    }
    if (u == 0) return printf_double("%.0f", v) + " B";
    return printf_double("%.1f", v) + " " + units[u];
}

// "1,440,685 (1.4 MB)"; "45 B"; "not measured" for null.
std::string fmt_bytes(const json& j) {
    if (auto n = count(j)) {
        if (*n < 1000) return std::to_string(*n) + " B";
        return group_digits(*n) + " (" + short_bytes(static_cast<double>(*n)) + ")";
    }
    if (j.is_null()) return "not measured";
    return u(j);
}

// A metric value: integers as they are, other numbers %.4g, "not measured" for null.
std::string fmt_value(const json& j) {
    if (j.is_null()) return "not measured";
    if (j.is_number_integer()) return j.dump();
    if (auto v = number(j)) return fmt_g(*v);
    return u(j);
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A gate's limit or value in its metric's unit: byte counts with digit groups.
std::string fmt_metric(const std::string& metric, const json& j) {
    if (ends_with(metric, "_bytes"))
        if (auto n = count(j)) return group_digits(*n);
    return fmt_value(j);
}

// Percent value "97.5 %", or "not measured".
std::string fmt_percent(const json& j) {
    if (j.is_null()) return "not measured";
    return fmt_value(j) + " %";
}

std::string fmt_unit(const json& j, const char* unit) {
    if (j.is_null()) return "not measured";
    return fmt_value(j) + " " + unit;
}

// Replaces control characters (and thereby the sentinels below) with U+FFFD.
std::string sanitize(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f)
            out += "\xEF\xBF\xBD";
        else
            out += static_cast<char>(c);
    }
    return out;
}

// Any JSON value as plain text: strings as they are, other values as compact JSON.
std::string plain(const json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_null()) return "";
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---------------------------------------------------------------- marked text

constexpr char kOpen = '\x01';   // start of a string taken from the report
constexpr char kClose = '\x02';  // its end

// Marks a string from the report: it is escaped in every output format.
std::string u(const std::string& s) {
    return kOpen + sanitize(s) + kClose;
}
std::string u(const json& j) {
    return u(plain(j));
}

// Appends the HTML/XML entity of & < > " ' and returns true; false for any other char.
bool append_entity(std::string& out, char c) {
    switch (c) {
        case '&':
            out += "&amp;";
            return true;
        case '<':
            out += "&lt;";
            return true;
        case '>':
            out += "&gt;";
            return true;
        case '"':
            out += "&quot;";
            return true;
        case '\'':
            out += "&#39;";
            return true;
        default:
            return false;
    }
}

std::string html_escape_plain(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s)
        if (!append_entity(out, c)) out += c;
    return out;
}

// A plain string (not marked text) for HTML text, attributes and XML.
std::string esc_plain(const std::string& s) {
    return html_escape_plain(sanitize(s));
}

// Marked text for HTML text, attributes and XML: everything escaped, sentinels dropped.
std::string esc_html(const std::string& text) {
    std::string s;
    s.reserve(text.size());
    for (char c : text)
        if (c != kOpen && c != kClose) s += c;
    return html_escape_plain(sanitize(s));
}

// Markdown (GitHub flavour, which also reads inline HTML): generated text raw, report
// strings escaped so they cannot open a tag, an entity, a link, a code span, emphasis or
// a table cell.
std::string esc_md(const std::string& text) {
    std::string out;
    bool marked = false;
    for (char c : text) {
        if (c == kOpen) {
            marked = true;
            continue;
        }
        if (c == kClose) {
            marked = false;
            continue;
        }
        if (!marked) {
            out += c;
            continue;
        }
        if (c != '\'' && append_entity(out, c)) continue;  // Markdown keeps apostrophes
        switch (c) {
            case '|':
            case '`':
            case '[':
            case ']':
            case '*':
            case '\\':
            case '!':
                out += '\\';
                out += c;
                break;
            default:
                out += c;
        }
    }
    return out;
}

// ---------------------------------------------------------------- gates

struct Gate {
    std::string name;
    std::string metric;
    std::string comparison;
    json limit;
    json value;
    bool measured = false;
    bool passed = false;
    std::string detail;
    bool baseline = false;
};

Gate read_gate(const json& g, bool baseline) {
    Gate gate;
    gate.name = plain(at(g, "name"));
    gate.metric = plain(at(g, "metric"));
    gate.comparison = plain(at(g, "comparison"));
    gate.limit = at(g, "limit");
    gate.value = at(g, "value");
    gate.measured = !gate.value.is_null();
    // A gate whose metric was not measured fails, whatever the JSON says.
    gate.passed = gate.measured && at(g, "passed").is_boolean() && at(g, "passed").get<bool>();
    gate.detail = plain(at(g, "detail"));
    gate.baseline = baseline;
    if (gate.name.empty()) gate.name = baseline ? "baseline." + gate.metric : gate.metric;
    return gate;
}

std::vector<Gate> read_gates(const json& report) {
    std::vector<Gate> gates;
    for (const auto& g : items(at(report, "gates"))) gates.push_back(read_gate(g, false));
    for (const auto& g : items(at(at(report, "baseline"), "checks")))
        gates.push_back(read_gate(g, true));
    return gates;
}

// A comparison as marked text: the known operators as they are, anything else escaped.
std::string cmp_text(const std::string& comparison) {
    for (const char* known : {"<=", ">=", "<", ">", "=="})
        if (comparison == known) return comparison;
    return u(comparison);
}

// The comparison that held instead of the one the gate asked for (marked text).
std::string negated(const std::string& comparison) {
    if (comparison == "<=") return ">";
    if (comparison == ">=") return "<";
    if (comparison == "<") return ">=";
    if (comparison == ">") return "<=";
    if (comparison == "==") return "!=";
    return "not " + u(comparison);
}

// How value and limit of a failed gate compare: the negated comparison, or, when the numbers
// say the comparison held (a report that contradicts itself), their actual relation.
std::string relation(const Gate& g) {
    auto value = number(g.value);
    auto limit = number(g.limit);
    if (!value || !limit || std::isnan(*value) || std::isnan(*limit)) return negated(g.comparison);
    bool holds = g.comparison == "<="   ? *value <= *limit
                 : g.comparison == ">=" ? *value >= *limit
                 : g.comparison == "<"  ? *value < *limit
                 : g.comparison == ">"  ? *value > *limit
                 : g.comparison == "==" ? *value == *limit
                                        : false;
    if (!holds) return negated(g.comparison);
    return *value < *limit ? "<" : *value > *limit ? ">" : "==";
}

// ", over by 0.0412" / ", under by 3.8" when both numbers are finite and the limit is missed.
std::string miss_by(const Gate& g) {
    auto value = number(g.value);
    auto limit = number(g.limit);
    if (!finite(value) || !finite(limit)) return "";
    bool upper = g.comparison.find('<') != std::string::npos;
    bool lower = g.comparison.find('>') != std::string::npos;
    if (upper == lower) return "";
    double by = upper ? *value - *limit : *limit - *value;
    if (!(by > 0)) return "";
    std::string amount = ends_with(g.metric, "_bytes") && by >= 0 && by < 9.0e18
                             ? group_digits(static_cast<uint64_t>(by))
                             : fmt_g(by);
    return (upper ? ", over by " : ", under by ") + amount;
}

// Why a gate failed, e.g. "kl_mean 0.0912 > 0.05, over by 0.0412" (marked text);
// `limit_word` gives "kl_mean 0.0912 > limit 0.05, ..." (the JUnit message).
std::string violation(const Gate& g, bool limit_word) {
    std::string limit = fmt_metric(g.metric, g.limit);
    if (!g.measured)
        return u(g.metric) + " not measured (limit " + cmp_text(g.comparison) + " " + limit + ")";
    if (g.passed) return u(g.metric) + " " + fmt_metric(g.metric, g.value);
    return u(g.metric) + " " + fmt_metric(g.metric, g.value) + " " + relation(g) +
           (limit_word ? " limit " : " ") + limit + miss_by(g);
}

// ---------------------------------------------------------------- document model

struct Cell {
    std::string text;  // marked text
    bool strong = false;
};

struct Table {
    std::vector<std::string> header;
    std::vector<bool> numeric;  // right-aligned columns
    std::vector<std::vector<Cell>> rows;
};

enum class BlockKind { Verdict, Heading, Paragraph, Table, Chart };

struct Block {
    BlockKind kind;
    std::string text;  // marked text (verdict, heading, paragraph)
    Table table;
    std::string chart_id;
    std::string chart_svg;      // HTML only: the <svg>, or empty when there is no data
    std::string chart_missing;  // the "not measured" sentence shown instead
    bool pass = true;           // Verdict
};

struct Doc {
    std::vector<Block> blocks;
    std::string title;  // plain text

    void verdict(std::string text, bool pass) {
        Block b{BlockKind::Verdict, std::move(text), {}, {}, {}, {}, pass};
        blocks.push_back(std::move(b));
    }
    void heading(std::string text) {
        blocks.push_back(Block{BlockKind::Heading, std::move(text), {}, {}, {}, {}, true});
    }
    void para(std::string text) {
        blocks.push_back(Block{BlockKind::Paragraph, std::move(text), {}, {}, {}, {}, true});
    }
    void table(Table t) {
        blocks.push_back(Block{BlockKind::Table, {}, std::move(t), {}, {}, {}, true});
    }
    void chart(std::string id, std::string svg, std::string missing) {
        blocks.push_back(Block{
            BlockKind::Chart, {}, {}, std::move(id), std::move(svg), std::move(missing), true});
    }
};

// ---------------------------------------------------------------- SVG charts

constexpr double kW = 760;
constexpr double kH = 320;

std::string f1(double v) {
    if (v == 0 || !std::isfinite(v)) return "0";
    return printf_double("%.1f", v);
}

// Round steps (1, 2, 5 x 10^k) covering [lo, hi] with about `target` intervals.
struct Axis {
    double lo = 0;
    double hi = 1;
    double step = 1;
    std::vector<double> ticks;
};

Axis nice_axis(double lo, double hi, int target) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
    if (hi < lo) std::swap(lo, hi);
    if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {
        double pad = std::fabs(hi) > 0 ? std::fabs(hi) * 0.1 : 1.0;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / target;
    double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double norm = raw / mag;
    double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
    Axis a;
    a.step = step;
    a.lo = std::floor(lo / step + 1e-9) * step;
    a.hi = std::ceil(hi / step - 1e-9) * step;
    if (a.hi <= a.lo) a.hi = a.lo + step;
    for (int i = 0; i <= 100; ++i) {
        double t = a.lo + i * step;
        if (t > a.hi + step * 1e-6) break;
        a.ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
    }
    return a;
}

std::string svg_open(const std::string& id, const std::string& label) {
    return "<svg class=\"chart\" id=\"" + id + "\" role=\"img\" aria-label=\"" + esc_plain(label) +
           "\" viewBox=\"0 0 " + f1(kW) + " " + f1(kH) + "\" width=\"" + f1(kW) + "\" height=\"" +
           f1(kH) + "\" preserveAspectRatio=\"xMinYMin meet\">\n<title>" + esc_plain(label) +
           "</title>\n";
}

std::string svg_text(double x, double y, const std::string& text, const char* anchor,
                     const char* cls = "lbl") {
    return "<text class=\"" + std::string(cls) + "\" x=\"" + f1(x) + "\" y=\"" + f1(y) +
           "\" text-anchor=\"" + anchor + "\">" + esc_plain(text) + "</text>\n";
}

std::string svg_line(double x1, double y1, double x2, double y2, const char* cls) {
    return "<line class=\"" + std::string(cls) + "\" x1=\"" + f1(x1) + "\" y1=\"" + f1(y1) +
           "\" x2=\"" + f1(x2) + "\" y2=\"" + f1(y2) + "\"/>\n";
}

std::string svg_rect(double x, double y, double w, double h, const char* cls,
                     const std::string& title) {
    std::string r = "<rect class=\"" + std::string(cls) + "\" x=\"" + f1(x) + "\" y=\"" + f1(y) +
                    "\" width=\"" + f1(std::max(w, 0.5)) + "\" height=\"" + f1(std::max(h, 0.5)) +
                    "\"";
    if (title.empty()) return r + "/>\n";
    return r + "><title>" + esc_plain(title) + "</title></rect>\n";
}

// A legend entry at (x, y): a swatch and a label; returns the x after it.
double svg_legend(std::string& s, double x, double y, const char* cls, const std::string& label) {
    s += svg_rect(x, y - 9, 12, 10, cls, "");
    s += svg_text(x + 16, y, label, "start");
    return x + 16 + 7.0 * static_cast<double>(label.size()) + 16;
}

// Horizontal y-axis gridlines and labels for a vertical value axis.
void svg_y_axis(std::string& s, const Axis& a, double x0, double x1, double top, double bottom,
                const std::string& title, bool bytes) {
    auto y_of = [&](double v) { return bottom - (v - a.lo) / (a.hi - a.lo) * (bottom - top); };
    for (double t : a.ticks) {
        double y = y_of(t);
        s += svg_line(x0, y, x1, y, "grid");
        s += svg_text(x0 - 6, y + 4, bytes ? short_bytes(t) : fmt_g(t), "end");
    }
    s += svg_line(x0, top, x0, bottom, "axis");
    double mid = (top + bottom) / 2;
    s += "<text class=\"lbl\" x=\"14\" y=\"" + f1(mid) +
         "\" text-anchor=\"middle\" transform=\"rotate(-90 14 " + f1(mid) + ")\">" +
         esc_plain(title) + "</text>\n";
}

struct Layer {
    std::string name;
    double order = 0;
    std::optional<double> sqnr;
    size_t index = 0;  // position in the JSON
};

// validation.per_layer: the contract's array in execution order, or validate's
// {"layers": [...]} object.
std::vector<Layer> read_layers(const json& report) {
    const json& pl = at(at(report, "validation"), "per_layer");
    const json& list = pl.is_object() ? at(pl, "layers") : pl;
    std::vector<Layer> layers;
    for (const auto& l : items(list)) {
        Layer layer;
        layer.name = plain(at(l, "name"));
        auto order = number(at(l, "order"));
        layer.order = finite(order) ? *order : static_cast<double>(layers.size());
        layer.sqnr = number(at(l, "sqnr_db"));
        layer.index = layers.size();
        layers.push_back(std::move(layer));
    }
    // Execution order; the JSON's order breaks ties.
    std::stable_sort(layers.begin(), layers.end(),
                     [](const Layer& a, const Layer& b) { return a.order < b.order; });
    return layers;
}

// Sort key for "worst": NaN and unmeasured first, then ascending SQNR (-inf .. inf).
double worst_key(const std::optional<double>& v) {
    if (!v || std::isnan(*v)) return -INFINITY;
    return *v;
}

// Positions (into `layers`, which is in execution order) of the `n` worst layers, worst
// first: lowest SQNR, ties by execution order.
std::vector<size_t> worst_layers(const std::vector<Layer>& layers, size_t n) {
    std::vector<size_t> idx(layers.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
        double ka = worst_key(layers[a].sqnr);
        double kb = worst_key(layers[b].sqnr);
        if (ka != kb) return ka < kb;
        bool a_nan = !layers[a].sqnr || std::isnan(*layers[a].sqnr);
        bool b_nan = !layers[b].sqnr || std::isnan(*layers[b].sqnr);
        if (a_nan != b_nan) return a_nan;  // unmeasured before -inf
        return false;
    });
    if (idx.size() > n) idx.resize(n);
    return idx;
}

std::string chart_per_layer(const std::vector<Layer>& layers, const std::vector<size_t>& worst) {
    if (layers.empty()) return "";
    const double x0 = 64, x1 = kW - 16, top = 40, bottom = kH - 48;
    double lo = 0, hi = 0;
    bool any_finite = false, any_inf = false, any_other = false;
    for (const auto& l : layers) {
        if (finite(l.sqnr)) {
            lo = std::min(lo, *l.sqnr);
            hi = std::max(hi, *l.sqnr);
            any_finite = true;
        } else if (l.sqnr && *l.sqnr > 0) {
            any_inf = true;
        } else {
            any_other = true;
        }
    }
    if (!any_finite) hi = 40;
    Axis a = nice_axis(lo, hi, 5);
    auto y_of = [&](double v) { return bottom - (v - a.lo) / (a.hi - a.lo) * (bottom - top); };
    // Highlight the worst layers of the table; with few layers only the worse half (all
    // red says nothing). A layer at inf dB is never highlighted.
    size_t highlight = layers.size() > 20 ? worst.size() : std::max<size_t>(1, layers.size() / 2);
    highlight = std::min(highlight, worst.size());
    std::vector<bool> is_worst(layers.size(), false);
    size_t highlighted = 0;
    for (size_t k = 0; k < highlight; ++k) {
        const auto& v = layers[worst[k]].sqnr;
        if (v && std::isinf(*v) && *v > 0) continue;
        is_worst[worst[k]] = true;
        ++highlighted;
    }

    std::string s = svg_open("chart-per-layer",
                             "Per-layer error: SQNR in dB of " + std::to_string(layers.size()) +
                                 " layers in execution order; the " + std::to_string(highlighted) +
                                 " worst highlighted");
    svg_y_axis(s, a, x0, x1, top, bottom, "SQNR (dB)", false);
    double bw = (x1 - x0) / static_cast<double>(layers.size());
    double gap = bw > 4 ? bw * 0.15 : 0;
    double base = y_of(0);
    for (size_t i = 0; i < layers.size(); ++i) {
        const auto& l = layers[i];
        double x = x0 + static_cast<double>(i) * bw + gap;
        double w = bw - 2 * gap;
        std::string value = l.sqnr ? fmt_g(*l.sqnr) + " dB" : "not measured";
        std::string title = l.name + ": SQNR " + value + " (layer " + fmt_g(l.order) + ")";
        if (!l.sqnr || std::isnan(*l.sqnr)) {
            // No bar: a cross on the zero line.
            s += "<path class=\"nan\" d=\"M" + f1(x) + " " + f1(base - 4) + "L" + f1(x + w) + " " +
                 f1(base + 4) + "M" + f1(x) + " " + f1(base + 4) + "L" + f1(x + w) + " " +
                 f1(base - 4) + "\"><title>" + esc_plain(title) + "</title></path>\n";
            continue;
        }
        double v = *l.sqnr;
        // Infinite values are clipped to the plot: inf (identical) to the top.
        double y = std::isinf(v) ? (v > 0 ? top : bottom) : y_of(v);
        const char* cls = is_worst[i] ? "worst" : std::isinf(v) && v > 0 ? "inf" : "bar";
        s += svg_rect(x, std::min(y, base), w, std::fabs(base - y), cls, title);
        // A dot above each highlighted bar keeps it visible when bars are thin.
        if (is_worst[i])
            s += "<circle class=\"worst\" cx=\"" + f1(x + w / 2) + "\" cy=\"" +
                 f1(std::min(y, base) - 5) + "\" r=\"3\"/>\n";
        if (std::isinf(v) && v > 0)
            s += "<path class=\"clip\" d=\"M" + f1(x) + " " + f1(top) + "L" + f1(x + w / 2) + " " +
                 f1(top - 5) + "L" + f1(x + w) + " " + f1(top) + "Z\"/>\n";
        if (std::isinf(v) && v > 0 && w >= 14)
            s += svg_text(x + w / 2, top + 12, "inf", "middle", "small");
    }
    s += svg_line(x0, base, x1, base, "axis");
    // x ticks: execution indices.
    Axis xa = nice_axis(0, static_cast<double>(layers.size() - 1), 6);
    for (double t : xa.ticks) {
        if (t < 0 || t > static_cast<double>(layers.size() - 1) || t != std::floor(t)) continue;
        double x = x0 + (t + 0.5) * bw;
        s += svg_line(x, bottom, x, bottom + 4, "axis");
        s += svg_text(x, bottom + 16, fmt_g(t), "middle");
    }
    s += svg_text((x0 + x1) / 2, kH - 10,
                  "layer, in execution order (" + std::to_string(layers.size()) + " layers)",
                  "middle");
    double lx = x0;
    if (highlighted > 0)
        lx = svg_legend(s, lx, 18, "worst", std::to_string(highlighted) + " lowest SQNR");
    lx = svg_legend(s, lx, 18, "bar", "other layers");
    if (any_inf) lx = svg_legend(s, lx, 18, "inf", "inf dB (identical), clipped at the top");
    if (any_other) svg_legend(s, lx, 18, "nan", "x: nan or not measured");
    s += "</svg>\n";
    return s;
}

struct Category {
    std::string name;
    std::optional<uint64_t> input;
    std::optional<uint64_t> output;
    std::optional<uint64_t> tensors;
};

std::vector<Category> read_categories(const json& report) {
    std::vector<Category> cats;
    for (const auto& c : items(at(at(report, "size"), "by_category")))
        cats.push_back(Category{plain(at(c, "category")), count(at(c, "input_bytes")),
                                count(at(c, "output_bytes")), count(at(c, "tensors"))});
    return cats;
}

// Truncates to at most `max_chars` code points, with "…" when cut (UTF-8 aware).
std::string truncate_utf8(const std::string& s, size_t max_chars) {
    size_t chars = 0;
    for (size_t i = 0; i < s.size(); ++i)
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++chars;
    if (chars <= max_chars || max_chars < 2) return s;
    std::string out;
    size_t kept = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        bool lead = (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
        if (lead && kept == max_chars - 1) break;
        if (lead) ++kept;
        out += s[i];
    }
    return out + "\xE2\x80\xA6";
}

std::string chart_size(const std::vector<Category>& cats) {
    if (cats.empty()) return "";
    const double x0 = 80, x1 = kW - 16, top = 40, bottom = kH - 56;
    double hi = 0;
    for (const auto& c : cats)
        hi = std::max({hi, static_cast<double>(c.input.value_or(0)),
                       static_cast<double>(c.output.value_or(0))});
    Axis a = nice_axis(0, hi > 0 ? hi : 1000, 5);
    auto y_of = [&](double v) { return bottom - (v - a.lo) / (a.hi - a.lo) * (bottom - top); };

    std::string s = svg_open("chart-size", "Size by tensor category: input vs output bytes for " +
                                               std::to_string(cats.size()) + " categories");
    svg_y_axis(s, a, x0, x1, top, bottom, "bytes", true);
    double gw = (x1 - x0) / static_cast<double>(cats.size());
    double bw = std::min(gw * 0.36, 60.0);
    for (size_t i = 0; i < cats.size(); ++i) {
        const auto& c = cats[i];
        double cx = x0 + (static_cast<double>(i) + 0.5) * gw;
        auto bar = [&](const std::optional<uint64_t>& v, double x, const char* cls,
                       const char* what) {
            if (!v) {
                s += svg_text(x + bw / 2, bottom - 4, "n/a", "middle", "small");
                return;
            }
            double y = y_of(static_cast<double>(*v));
            s += svg_rect(x, y, bw, bottom - y, cls,
                          c.name + ", " + what + ": " + fmt_bytes(json(*v)));
        };
        bar(c.input, cx - bw - 1, "input", "input");
        bar(c.output, cx + 1, "output", "output");
        if (c.input && c.output && *c.output > 0) {
            double ratio = static_cast<double>(*c.input) / static_cast<double>(*c.output);
            s += svg_text(cx + 1 + bw / 2, y_of(static_cast<double>(*c.output)) - 4,
                          fmt_g(ratio) + "x", "middle", "small");
        }
        size_t max_chars = static_cast<size_t>(std::max(gw / 7.0, 3.0));
        s += svg_text(cx, bottom + 16, truncate_utf8(c.name, max_chars), "middle");
    }
    s += svg_line(x0, bottom, x1, bottom, "axis");
    s += svg_text((x0 + x1) / 2, kH - 12, "tensor category", "middle");
    double lx = x0;
    lx = svg_legend(s, lx, 18, "input", "input (original)");
    svg_legend(s, lx, 18, "output", "output (compressed)");
    s += "</svg>\n";
    return s;
}

std::vector<double> finite_samples(const json& side) {
    std::vector<double> out;
    for (const auto& v : items(at(side, "samples_ms"))) {
        auto d = number(v);
        if (finite(d)) out.push_back(*d);
    }
    return out;
}

// numpy's default percentile: linear interpolation at q * (n - 1) of the sorted values.
double percentile(const std::vector<double>& sorted, double q) {
    if (sorted.empty()) return NAN;
    double pos = q * static_cast<double>(sorted.size() - 1);
    auto i = static_cast<size_t>(std::floor(pos));
    if (i + 1 >= sorted.size()) return sorted.back();
    double frac = pos - static_cast<double>(i);
    return sorted[i] + (sorted[i + 1] - sorted[i]) * frac;
}

// `p50s`: the report's own medians (latency.*.p50), shown next to the rows so the chart
// and the table print the same number; NaN: computed from the samples.
std::string chart_latency(const std::vector<double>& reference,
                          const std::vector<double>& candidate, const double (&p50s)[2]) {
    if (reference.empty() && candidate.empty()) return "";
    const double x0 = 110, x1 = kW - 20, top = 30, bottom = kH - 48;
    double lo = INFINITY, hi = -INFINITY;
    for (const auto* v : {&reference, &candidate})
        for (double d : *v) lo = std::min(lo, d), hi = std::max(hi, d);
    double pad = (hi - lo) * 0.05;
    Axis a = nice_axis(std::max(0.0, lo - pad), hi + pad, 6);
    auto x_of = [&](double v) { return x0 + (v - a.lo) / (a.hi - a.lo) * (x1 - x0); };

    std::string s = svg_open("chart-latency",
                             "Latency distribution: original (" + std::to_string(reference.size()) +
                                 " runs) vs compressed (" + std::to_string(candidate.size()) +
                                 " runs), milliseconds per run");
    for (double t : a.ticks) {
        double x = x_of(t);
        s += svg_line(x, top, x, bottom, "grid");
        s += svg_text(x, bottom + 16, fmt_g(t), "middle");
    }
    s += svg_line(x0, bottom, x1, bottom, "axis");
    s += svg_text((x0 + x1) / 2, kH - 10, "time per run (ms)", "middle");

    double row_h = (bottom - top) / 2;
    const std::pair<const std::vector<double>*, const char*> rows[] = {{&reference, "original"},
                                                                       {&candidate, "compressed"}};
    for (size_t r = 0; r < 2; ++r) {
        const auto& samples = *rows[r].first;
        const char* cls = r == 0 ? "input" : "output";
        double cy = top + row_h * (static_cast<double>(r) + 0.5);
        s += svg_text(x0 - 8, cy - 2, rows[r].second, "end");
        if (samples.empty()) {
            s += svg_text(x0 - 8, cy + 14, "not measured", "end", "small");
            continue;
        }
        std::vector<double> sorted = samples;
        std::sort(sorted.begin(), sorted.end());
        double p25 = percentile(sorted, 0.25), p50 = percentile(sorted, 0.5);
        double p75 = percentile(sorted, 0.75);
        if (std::isfinite(p50s[r])) p50 = p50s[r];
        s += svg_text(x0 - 8, cy + 14, "p50 " + fmt_g(p50) + " ms", "end", "small");
        // Whiskers min..max, box p25..p75, median line; then every run as a dot, spread
        // vertically by a fixed pattern so equal times stay visible.
        s += svg_line(x_of(sorted.front()), cy, x_of(sorted.back()), cy, "whisker");
        s += svg_line(x_of(sorted.front()), cy - 8, x_of(sorted.front()), cy + 8, "whisker");
        s += svg_line(x_of(sorted.back()), cy - 8, x_of(sorted.back()), cy + 8, "whisker");
        s += svg_rect(x_of(p25), cy - 14, x_of(p75) - x_of(p25), 28,
                      r == 0 ? "box-input" : "box-output",
                      std::string(rows[r].second) + ": p25 " + fmt_g(p25) + " ms, p50 " +
                          fmt_g(p50) + " ms, p75 " + fmt_g(p75) + " ms");
        s += svg_line(x_of(p50), cy - 14, x_of(p50), cy + 14, "median");
        for (size_t i = 0; i < samples.size(); ++i) {
            double jitter = (static_cast<double>((i * 7919) % 17) / 16.0 - 0.5) * (row_h - 40);
            s += "<circle class=\"" + std::string(cls) + " dot\" cx=\"" + f1(x_of(samples[i])) +
                 "\" cy=\"" + f1(cy + jitter) + "\" r=\"2.5\"/>\n";
        }
    }
    s += "</svg>\n";
    return s;
}

// ---------------------------------------------------------------- the document

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
    return out;
}

std::string ratio_text(const std::optional<double>& num, const std::optional<double>& den) {
    if (!finite(num) || !finite(den) || *den == 0) return "not measured";
    return fmt_g(*num / *den);
}

std::string short_hash(const json& j) {
    std::string h = plain(j);
    if (h.empty()) return "not recorded";
    return u(h.substr(0, std::min<size_t>(12, h.size())));
}

// A mixed-precision budget's size/KL curve (report.json passes[].mixed_precision.curve):
// each plan measured through the runtime, the chosen one marked.
void mixed_curve_table(Doc& doc, const json& mixed) {
    const auto& rows = items(at(mixed, "curve"));
    if (rows.empty()) return;
    Table t{{"plan bytes", "bits per weight", "predicted", "KL mean", "KL max", ""},
            {true, true, true, true, true, false},
            {}};
    auto g = [](const json& v) {
        auto n = number(v);
        return n ? printf_double("%.4g", *n) : std::string("not measured");
    };
    for (const auto& r : rows)
        t.rows.push_back(
            {{fmt_bytes(at(r, "bytes"))},
             {g(at(r, "bits_per_weight"))},
             {g(at(r, "predicted"))},
             {g(at(r, "kl_mean"))},
             {g(at(r, "kl_max"))},
             {at(r, "chosen").is_boolean() && at(r, "chosen").get<bool>() ? "chosen" : ""}});
    doc.table(std::move(t));
}

// A pruning pass's weights, one row each (report.json passes[].pruned), at most
// kPrunedRows of them, then one row of totals over all.
void pruned_table(Doc& doc, const json& pruned) {
    constexpr size_t kPrunedRows = 40;
    const auto& rows = items(pruned);
    if (rows.empty()) return;
    Table t{
        {"weight", "op", "method", "pattern", "sparsity", "storage", "input bytes", "output bytes"},
        {false, false, false, false, true, false, true, true},
        {}};
    uint64_t in = 0, out = 0;
    bool sums = true;
    for (size_t i = 0; i < rows.size(); ++i) {
        const json& r = rows[i];
        auto a = count(at(r, "input_bytes")), b = count(at(r, "output_bytes"));
        sums = sums && a && b;
        if (a && b) {
            in += *a;
            out += *b;
        }
        if (i >= kPrunedRows) continue;
        auto sparsity = number(at(r, "sparsity"));
        t.rows.push_back(
            {{u(at(r, "name"))},
             {u(at(r, "op"))},
             {u(at(r, "method"))},
             {u(at(r, "pattern"))},
             {sparsity ? printf_double("%.1f %%", 100.0 * *sparsity) : std::string("not measured")},
             {u(at(r, "storage"))},
             {fmt_bytes(at(r, "input_bytes"))},
             {fmt_bytes(at(r, "output_bytes"))}});
    }
    if (rows.size() > kPrunedRows)
        t.rows.push_back(
            {{"... " + std::to_string(rows.size() - kPrunedRows) + " more in report.json"},
             {""},
             {""},
             {""},
             {""},
             {""},
             {""},
             {""}});
    t.rows.push_back({{"all " + std::to_string(rows.size()) + " pruned weights"},
                      {""},
                      {""},
                      {""},
                      {""},
                      {""},
                      {sums ? fmt_bytes(json(in)) : std::string("not measured")},
                      {sums ? fmt_bytes(json(out)) : std::string("not measured")}});
    doc.table(std::move(t));
}

// The accuracy-aware fallback (report.json "fallback"): what it found, and every node it
// returned to float with its cost in bytes and its gain in each judged metric.
void fallback_section(Doc& doc, const json& fallback) {
    if (!fallback.is_object()) return;
    doc.heading("Accuracy-aware fallback");
    const std::string pass = u(at(fallback, "pass")) + " (" + u(at(fallback, "pass_name")) + ")";
    const std::string outcome = plain(at(fallback, "outcome"));
    const auto& returned = items(at(fallback, "returned"));
    std::vector<std::string> missed;
    for (const auto& g : items(at(at(fallback, "initial"), "gates")))
        if (!(at(g, "passed") == true)) missed.push_back(u(at(g, "name")));
    std::string text;
    if (outcome == "not needed") {
        text = "The gates held after " + pass + ": no node went back to float.";
    } else {
        text = "The gates missed after " + pass + " (" + join(missed, ", ") + ")";
        if (outcome == "no candidates") {
            text += "; the pass quantized no node that could go back to float.";
        } else {
            const auto candidates = count(at(fallback, "candidates"));
            text += "; " + std::to_string(returned.size()) + " of " +
                    (candidates ? std::to_string(*candidates) : std::string("?")) +
                    " quantized nodes went back to float, ranked by " + u(at(fallback, "rank"));
            if (!at(fallback, "ranked_on").is_null()) text += " on " + u(at(fallback, "ranked_on"));
            text += outcome == "gates hold" ? "; the gates now hold."
                                            : "; " + u(outcome) + ", the gates still miss.";
        }
    }
    doc.para(text);
    if (!returned.empty()) {
        const bool sqnr = plain(at(fallback, "rank")) == "sqnr";
        Table t{{"#", "node", "op", sqnr ? "node SQNR dB" : "output SQNR gain dB", "cost bytes",
                 "gain", "gates"},
                {true, false, false, true, true, false, false},
                {}};
        for (const auto& r : returned) {
            std::vector<std::string> gains;
            const json& before = at(r, "metrics_before");
            for (const auto& [metric, after] : at(r, "metrics_after").items())
                gains.push_back(u(metric) + " " + fmt_metric(metric, at(before, metric.c_str())) +
                                " -> " + fmt_metric(metric, after));
            const json& cost = at(r, "cost_bytes");
            std::string cost_text = cost.is_number_integer() && cost.get<int64_t>() > 0
                                        ? "+" + group_digits(cost.get<uint64_t>())
                                        : fmt_value(cost);
            const bool held = at(r, "gates_held") == true;
            t.rows.push_back({{fmt_value(at(r, "rank"))},
                              {u(at(r, "node"))},
                              {u(at(r, "op_type"))},
                              {fmt_value(at(r, "score"))},
                              {cost_text},
                              {join(gains, "; ")},
                              {held ? "hold" : "miss", !held}});
        }
        doc.table(std::move(t));
    }
    std::vector<std::string> no_effect;
    for (const auto& n : items(at(fallback, "no_effect"))) no_effect.push_back(u(at(n, "node")));
    if (!no_effect.empty())
        doc.para("Tried and kept quantized, as in float they change no judged metric: " +
                 join(no_effect, ", ") + ".");
    std::vector<std::string> not_judged;
    for (const auto& g : items(at(fallback, "not_judged"))) not_judged.push_back(u(g));
    if (!not_judged.empty())
        doc.para("Not judged while nodes went back to float (judged on the written output): " +
                 join(not_judged, ", ") + ".");
}

Doc build_doc(const json& report, bool charts) {
    Doc doc;
    const auto gates = read_gates(report);
    size_t gate_total = 0, gate_passed = 0, base_total = 0, base_passed = 0;
    std::vector<std::string> failing;
    for (const auto& g : gates) {
        (g.baseline ? base_total : gate_total) += 1;
        if (g.passed)
            (g.baseline ? base_passed : gate_passed) += 1;
        else
            failing.push_back(u(g.name) + " failed (" + violation(g, false) + ")");
    }
    const json& verdict_json = at(report, "verdict");
    // No verdict in the report: the gates decide.
    bool fail = !failing.empty() || (verdict_json.is_string() && plain(verdict_json) != "pass");
    std::string verdict;
    if (!failing.empty()) {
        verdict = "FAIL: " + join(failing, "; ");
    } else if (fail) {
        const json& code = at(report, "exit_code");
        verdict = "FAIL: verdict " + u(verdict_json);
        if (!code.is_null()) verdict += ", exit code " + u(code);
    } else {
        std::vector<std::string> parts;
        if (gate_total == 0 && base_total == 0) parts.push_back("no gates set");
        if (gate_total > 0)
            parts.push_back(std::to_string(gate_passed) + " of " + std::to_string(gate_total) +
                            (gate_total == 1 ? " gate passed" : " gates passed"));
        if (base_total > 0)
            parts.push_back(
                std::to_string(base_passed) + " of " + std::to_string(base_total) +
                (base_total == 1 ? " baseline check passed" : " baseline checks passed"));
        verdict = "PASS: " + join(parts, ", ");
    }
    // Random inputs are said in words on the verdict line itself.
    const json& inputs = at(at(report, "validation"), "inputs");
    if (at(inputs, "synthetic").is_boolean() && at(inputs, "synthetic").get<bool>()) {
        const auto n = count(at(inputs, "samples"));
        verdict += "; validated on " + (n ? std::to_string(*n) + " " : std::string()) +
                   "synthetic random input" + (n && *n == 1 ? "" : "s") + ", not real data";
    }
    doc.title = fail ? "edgepack: FAIL" : "edgepack: PASS";
    doc.verdict("edgepack: " + verdict, !fail);

    // What was compressed.
    {
        const json& input = at(report, "input");
        const json& recipe = at(report, "recipe");
        std::vector<std::string> parts;
        if (!at(recipe, "file").is_null()) {
            std::string r = "Recipe " + u(at(recipe, "file"));
            std::vector<std::string> overrides;
            for (const auto& o : items(at(recipe, "overrides"))) overrides.push_back(u(o));
            if (!overrides.empty()) r += " with " + join(overrides, ", ");
            parts.push_back(r);
        }
        if (!at(input, "path").is_null())
            parts.push_back("input " + u(at(input, "path")) + " (" + u(at(input, "format")) + ", " +
                            fmt_bytes(at(input, "bytes")) + ", sha256 " +
                            short_hash(at(input, "sha256")) + ")");
        if (!parts.empty()) doc.para(join(parts, "; ") + ".");
    }

    // What the passes did: their summary lines (one per group of tensors quantized alike),
    // warnings, and what calibration ran on.
    if (!items(at(report, "passes")).empty()) {
        doc.heading("Passes");
        for (const auto& p : items(at(report, "passes"))) {
            std::string head = u(at(p, "path")) + " " + u(at(p, "pass"));
            std::vector<std::string> facts;
            if (auto n = count(at(p, "rewrites")))
                facts.push_back(std::to_string(*n) + (*n == 1 ? " rewrite" : " rewrites"));
            if (auto n = count(at(p, "skipped"))) facts.push_back(std::to_string(*n) + " skipped");
            doc.para(head + (facts.empty() ? "" : ": " + join(facts, ", ")) + ".");
            for (const auto& line : items(at(p, "summary"))) doc.para(u(line));
            for (const auto& w : items(at(p, "warnings"))) doc.para("Warning: " + u(w));
            pruned_table(doc, at(p, "pruned"));
            mixed_curve_table(doc, at(p, "mixed_precision"));
        }
    }

    // Gates.
    doc.heading("Gates");
    if (gates.empty()) {
        doc.para("No gates set: the verdict only says the compression ran.");
    } else {
        Table t{{"gate", "limit", "value", "result"}, {false, false, true, false}, {}};
        for (const auto& g : gates) {
            std::string result = g.passed ? "pass" : "FAIL";
            if (!g.passed) {
                std::string by = g.measured ? miss_by(g) : "";
                if (!by.empty()) result += " (" + by.substr(2) + ")";
                if (!g.measured) result += " (not measured)";
            }
            t.rows.push_back(
                {{u(g.name)},
                 {u(g.metric) + " " + cmp_text(g.comparison) + " " + fmt_metric(g.metric, g.limit)},
                 {fmt_metric(g.metric, g.value)},
                 {result, !g.passed}});
        }
        doc.table(std::move(t));
        const json& baseline = at(report, "baseline");
        if (!at(baseline, "file").is_null())
            doc.para("Baseline checks compare with " + u(at(baseline, "file")) + ".");
    }
    fallback_section(doc, at(report, "fallback"));
    std::vector<std::string> not_in_baseline;
    for (const auto& m : items(at(at(report, "baseline"), "not_in_baseline")))
        not_in_baseline.push_back(u(m));
    if (!not_in_baseline.empty())
        doc.para("Not in the baseline report, so not compared (not failed): " +
                 join(not_in_baseline, ", ") + ".");

    // Size.
    doc.heading("Size");
    const json& size = at(report, "size");
    const json& metrics = at(report, "metrics");
    if (!size.is_object()) {
        doc.para("Size: not measured.");
    } else {
        const json& in_b = at(size, "input_bytes");
        const json& out_b = at(size, "output_bytes");
        Table t{{"", "bytes"}, {false, true}, {}};
        t.rows.push_back({{"input (original)"}, {fmt_bytes(in_b)}});
        t.rows.push_back({{"output (compressed)"}, {fmt_bytes(out_b)}});
        const json& ratio = at(size, "compression_ratio");
        t.rows.push_back(
            {{"compression ratio"}, {ratio.is_null() ? "not measured" : fmt_value(ratio) + "x"}});
        doc.table(std::move(t));
    }
    const auto cats = read_categories(report);
    if (!cats.empty()) {
        Table t{{"category", "tensors", "input bytes", "output bytes", "ratio"},
                {false, true, true, true, true},
                {}};
        for (const auto& c : cats) {
            auto opt_json = [](const std::optional<uint64_t>& v) { return v ? json(*v) : json(); };
            std::optional<double> in, out;
            if (c.input) in = static_cast<double>(*c.input);
            if (c.output) out = static_cast<double>(*c.output);
            std::string r = ratio_text(in, out);
            t.rows.push_back({{u(c.name)},
                              {c.tensors ? std::to_string(*c.tensors) : "not recorded"},
                              {fmt_bytes(opt_json(c.input))},
                              {fmt_bytes(opt_json(c.output))},
                              {r == "not measured" ? r : r + "x"}});
        }
        doc.table(std::move(t));
    }
    if (charts)
        doc.chart("chart-size", chart_size(cats),
                  "Size by tensor category: not measured (the report has no size.by_category).");

    // Accuracy.
    doc.heading("Accuracy");
    const json& validation = at(report, "validation");
    if (!validation.is_object()) {
        doc.para("Accuracy: not measured (the recipe has no validate section).");
    } else {
        const json& inputs = at(validation, "inputs");
        std::string on = "Compared on " + (at(inputs, "description").is_null()
                                               ? std::string("inputs not described")
                                               : u(at(inputs, "description")));
        if (auto n = count(at(inputs, "samples"))) on += "; " + std::to_string(*n) + " samples";
        if (auto n = count(at(validation, "threads")))
            on += ", " + std::to_string(*n) + (*n == 1 ? " thread" : " threads");
        doc.para(on + ".");
        Table t{{"metric", "original", "compressed", "change"}, {false, true, true, true}, {}};
        const json& acc_ref = at(metrics, "accuracy_reference");
        const json& acc_cand = at(metrics, "accuracy_candidate");
        const json& drop = at(metrics, "accuracy_drop");
        const bool ctc = at(at(validation, "accuracy"), "task") == "ctc";
        const char* accuracy = ctc ? "line accuracy (CTC vs labels)" : "accuracy (top-1 vs labels)";
        if (acc_ref.is_null() && acc_cand.is_null())
            t.rows.push_back({{accuracy}, {"not measured (no labels)"}, {"not measured"}, {""}});
        else
            t.rows.push_back({{accuracy},
                              {fmt_percent(acc_ref)},
                              {fmt_percent(acc_cand)},
                              {drop.is_null() ? "" : "drop " + fmt_unit(drop, "pp")}});
        const json& cer_cand = at(metrics, "cer_candidate");
        if (!cer_cand.is_null())
            t.rows.push_back({{"character error rate (CTC vs labels)"},
                              {fmt_percent(at(metrics, "cer_reference"))},
                              {fmt_percent(cer_cand)},
                              {""}});
        const json& ppl_cand = at(metrics, "perplexity_candidate");
        if (!ppl_cand.is_null())
            t.rows.push_back({{"perplexity (decoder tokens)"},
                              {fmt_value(at(metrics, "perplexity_reference"))},
                              {fmt_value(ppl_cand)},
                              {"ratio " + fmt_value(at(metrics, "ppl_ratio"))}});
        auto row = [&](const char* label, const std::string& value) {
            t.rows.push_back({{label}, {""}, {value}, {""}});
        };
        // Class metrics only where an output has classes: a map or an embedding has none.
        if (!at(metrics, "kl_mean").is_null()) {
            row("KL divergence, mean", fmt_value(at(metrics, "kl_mean")));
            row("KL divergence, p99", fmt_value(at(metrics, "kl_p99")));
            row("top-1 agreement", fmt_percent(at(metrics, "top1_agreement")));
            row("top-k agreement", fmt_percent(at(metrics, "topk_agreement")));
        }
        if (!at(metrics, "line_agreement").is_null())
            row("line agreement (CTC text)", fmt_percent(at(metrics, "line_agreement")));
        row("SQNR", fmt_unit(at(metrics, "sqnr_db"), "dB"));
        // %.4g would print 0.99999 as 1.
        auto cosine = number(at(metrics, "cosine_similarity"));
        row("cosine similarity", finite(cosine) ? printf_double("%.6g", *cosine)
                                                : fmt_value(at(metrics, "cosine_similarity")));
        row("max abs error", fmt_value(at(metrics, "max_abs_error")));
        doc.table(std::move(t));
    }

    // Latency and memory.
    doc.heading("Latency and memory");
    const json& latency = at(report, "latency");
    const json& memory = at(report, "memory");
    const json& ref_l = at(latency, "reference");
    const json& cand_l = at(latency, "candidate");
    if (!latency.is_object() && !memory.is_object()) {
        doc.para("Latency and memory: not measured (no validation or benchmark runs).");
    } else {
        if (latency.is_object()) {
            std::string line;
            if (auto n = count(at(latency, "runs"))) line += std::to_string(*n) + " timed runs";
            if (auto n = count(at(latency, "warmup")))
                line += (line.empty() ? "" : " after ") + std::to_string(*n) + " warm-up runs";
            if (auto n = count(at(latency, "threads")))
                line += (line.empty() ? "" : ", ") + std::to_string(*n) +
                        (*n == 1 ? " thread" : " threads");
            if (!line.empty()) doc.para("Latency: " + line + ", each model in the same run.");
        } else {
            doc.para("Latency: not measured (validate.benchmark_runs is 0).");
        }
        Table t{{"", "original", "compressed", "ratio"}, {false, true, true, true}, {}};
        for (const char* p : {"p50", "p95"}) {
            auto r = number(at(ref_l, p));
            auto c = number(at(cand_l, p));
            t.rows.push_back({{std::string("latency ") + p},
                              {fmt_unit(at(ref_l, p), "ms")},
                              {fmt_unit(at(cand_l, p), "ms")},
                              {ratio_text(c, r)}});
        }
        // The gate's ratio: the median of back-to-back pair ratios (metrics.latency_ratio).
        if (!at(metrics, "latency_ratio").is_null())
            t.rows.push_back({{"time ratio (median of back-to-back pairs)"},
                              {""},
                              {""},
                              {fmt_value(at(metrics, "latency_ratio"))}});
        const json& ref_peak = !at(at(memory, "reference"), "peak_bytes").is_null()
                                   ? at(at(memory, "reference"), "peak_bytes")
                                   : at(metrics, "reference_peak_memory_bytes");
        const json& cand_peak = !at(at(memory, "candidate"), "peak_bytes").is_null()
                                    ? at(at(memory, "candidate"), "peak_bytes")
                                    : at(metrics, "peak_memory_bytes");
        t.rows.push_back({{"peak memory"},
                          {fmt_bytes(ref_peak)},
                          {fmt_bytes(cand_peak)},
                          {ratio_text(number(cand_peak), number(ref_peak))}});
        doc.table(std::move(t));
    }
    const double p50s[2] = {number(at(ref_l, "p50")).value_or(NAN),
                            number(at(cand_l, "p50")).value_or(NAN)};
    if (charts)
        doc.chart("chart-latency",
                  chart_latency(finite_samples(ref_l), finite_samples(cand_l), p50s),
                  "Latency distribution: not measured (the report has no latency samples).");

    // Worst layers.
    const auto layers = read_layers(report);
    const auto worst = worst_layers(layers, 10);
    doc.heading("Worst layers by SQNR");
    if (layers.empty()) {
        // In HTML the chart's own "not measured" paragraph says it.
        if (!charts)
            doc.para("Per-layer error: not measured (no per-layer comparison in the report).");
    } else {
        doc.para("The " + std::to_string(worst.size()) + " layers with the lowest SQNR of " +
                 std::to_string(layers.size()) + " compared (lower is worse).");
        Table t{{"#", "layer", "order", "SQNR dB"}, {true, false, true, true}, {}};
        for (size_t k = 0; k < worst.size(); ++k) {
            const auto& l = layers[worst[k]];
            t.rows.push_back({{std::to_string(k + 1)},
                              {u(l.name)},
                              {fmt_g(l.order)},
                              {l.sqnr ? fmt_g(*l.sqnr) : "not measured"}});
        }
        doc.table(std::move(t));
    }
    if (charts)
        doc.chart("chart-per-layer", chart_per_layer(layers, worst),
                  "Per-layer error: not measured (the report has no validation.per_layer).");

    // Outputs and environment.
    doc.heading("Outputs");
    const json& outputs = at(report, "outputs");
    if (items(outputs).empty()) {
        doc.para("No outputs recorded.");
    } else {
        Table t{{"path", "format", "bytes", "sha256", "validated"},
                {false, false, true, false, false},
                {}};
        for (const auto& o : items(outputs)) {
            const json& v = at(o, "validated");
            const json& why = at(o, "not_validated");
            std::string validated = v.is_boolean() ? (v.get<bool>() ? "yes" : "no") : "";
            if (why.is_string()) validated += ": " + u(why);
            t.rows.push_back({{u(at(o, "path"))},
                              {u(at(o, "format"))},
                              {fmt_bytes(at(o, "bytes"))},
                              {short_hash(at(o, "sha256"))},
                              {validated}});
        }
        doc.table(std::move(t));
        // Every other validated output: its comparison and the gates judged on it (the
        // accuracy section above is the first validated output's).
        const json& others = at(report, "other_validations");
        if (!items(others).empty()) {
            Table v{{"also validated", "KL mean", "top-1 agreement", "line agreement", "accuracy",
                     "SQNR", "gates"},
                    {false, true, true, true, true, true, false},
                    {}};
            for (const auto& other : items(others)) {
                const json& m = at(other, "metrics");
                size_t failed = 0, total = 0;
                for (const auto& g : items(at(other, "gates"))) {
                    ++total;
                    if (!(at(g, "passed") == true)) ++failed;
                }
                v.rows.push_back({{u(at(other, "candidate"))},
                                  {fmt_value(at(m, "kl_mean"))},
                                  {fmt_percent(at(m, "top1_agreement"))},
                                  {fmt_percent(at(m, "line_agreement"))},
                                  {fmt_percent(at(m, "accuracy_candidate"))},
                                  {fmt_unit(at(m, "sqnr_db"), "dB")},
                                  {std::to_string(total - failed) + " of " + std::to_string(total) +
                                   " passed"}});
            }
            doc.table(std::move(v));
        }
    }
    {
        const json& env = at(report, "environment");
        std::vector<std::string> parts;
        const json& version = at(at(report, "edgepack"), "version");
        parts.push_back("edgepack " +
                        (version.is_null() ? std::string("(version not recorded)") : u(version)));
        if (!at(env, "cpu").is_null()) {
            std::string cpu = u(at(env, "cpu"));
            if (!at(env, "isa").is_null()) cpu += " (" + u(at(env, "isa")) + ")";
            parts.push_back(cpu);
        }
        if (auto n = count(at(env, "logical_cpus")))
            parts.push_back(std::to_string(*n) + " logical CPUs");
        if (auto n = count(at(env, "threads")))
            parts.push_back(std::to_string(*n) + (*n == 1 ? " thread" : " threads"));
        if (!at(env, "os").is_null()) parts.push_back(u(at(env, "os")));
        std::string line = "Environment: " + join(parts, ", ");
        auto total = number(at(at(report, "timings"), "total_s"));
        if (finite(total)) line += "; total " + fmt_g(*total) + " s";
        doc.para(line + ".");
    }
    return doc;
}

// ---------------------------------------------------------------- Markdown

std::string render_md(const Doc& doc) {
    std::string out;
    for (const auto& b : doc.blocks) {
        switch (b.kind) {
            case BlockKind::Verdict:
                out += "## " + esc_md(b.text) + "\n\n";
                break;
            case BlockKind::Heading:
                out += "### " + esc_md(b.text) + "\n\n";
                break;
            case BlockKind::Paragraph:
                out += esc_md(b.text) + "\n\n";
                break;
            case BlockKind::Table: {
                const auto& t = b.table;
                out += "|";
                for (const auto& h : t.header) out += " " + esc_md(h) + " |";
                out += "\n|";
                for (size_t i = 0; i < t.header.size(); ++i)
                    out += i < t.numeric.size() && t.numeric[i] ? "---:|" : "---|";
                out += "\n";
                for (const auto& row : t.rows) {
                    out += "|";
                    for (const auto& c : row) {
                        std::string text = esc_md(c.text);
                        out += " " + (c.strong && !text.empty() ? "**" + text + "**" : text) + " |";
                    }
                    out += "\n";
                }
                out += "\n";
                break;
            }
            case BlockKind::Chart:
                break;
        }
    }
    // One trailing newline.
    while (out.size() > 1 && out[out.size() - 1] == '\n' && out[out.size() - 2] == '\n')
        out.pop_back();
    return out;
}

// ---------------------------------------------------------------- HTML

constexpr const char* kStyle =
    R"(body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;)"
    R"(margin:24px auto;max-width:980px;padding:0 16px;color:#1f2328;line-height:1.45}
h1{font-size:1.35em;padding:10px 14px;border-radius:6px}
h1.pass{background:#dafbe1;border:1px solid #4ac26b}
h1.fail{background:#ffebe9;border:1px solid #ff8182}
h2{font-size:1.15em;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0 12px}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.failcell{color:#cf222e;font-weight:600}
p.chart-missing{color:#57606a;font-style:italic;border:1px dashed #d0d7de;padding:8px 12px}
svg.chart{display:block;max-width:100%;height:auto;margin:8px 0 16px;font-size:11px}
svg.chart .lbl{fill:#1f2328;font-size:11px}
svg.chart .small{fill:#57606a;font-size:10px}
svg.chart .axis{stroke:#57606a;stroke-width:1}
svg.chart .grid{stroke:#d0d7de;stroke-width:0.5}
svg.chart .bar{fill:#4c78a8}
svg.chart .worst{fill:#d62728}
svg.chart .inf{fill:#9ecae9}
svg.chart .clip{fill:#1f2328}
svg.chart .nan{stroke:#ff7f0e;stroke-width:1.5;fill:none}
svg.chart .input{fill:#9e9e9e}
svg.chart .output{fill:#4c78a8}
svg.chart .dot{fill-opacity:0.5}
svg.chart .box-input{fill:#e0e0e0;stroke:#616161}
svg.chart .box-output{fill:#c6dbef;stroke:#08519c}
svg.chart .whisker{stroke:#57606a;stroke-width:1}
svg.chart .median{stroke:#1f2328;stroke-width:2.5}
footer{color:#57606a;font-size:0.9em;margin-top:24px})";

// Records, once the page has loaded, every chart's bounding box and any script error on
// <body> (data-chart-boxes, data-errors), for scripts/xcheck/html_report_check.py.
constexpr const char* kCheckScript = R"(<script>
(function () {
  var errors = [];
  function record() {
    if (document.body) document.body.setAttribute('data-errors', JSON.stringify(errors));
  }
  window.addEventListener('error', function (e) { errors.push(String(e.message)); record(); });
  window.addEventListener('load', function () {
    var boxes = {};
    var charts = document.querySelectorAll('svg.chart');
    for (var i = 0; i < charts.length; i++) {
      var b = charts[i].getBBox();
      boxes[charts[i].id] = {width: b.width, height: b.height,
        elements: charts[i].querySelectorAll('rect,line,circle,path,polyline,polygon').length};
    }
    document.body.setAttribute('data-chart-boxes', JSON.stringify(boxes));
    record();
  });
})();
</script>
)";

std::string render_html_doc(const Doc& doc) {
    std::string out;
    out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    out +=
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
        "'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n";
    out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    out += "<title>" + esc_html(doc.title) + "</title>\n<style>\n" + kStyle + "\n</style>\n";
    out += kCheckScript;
    out += "</head>\n<body>\n";
    for (size_t i = 0; i < doc.blocks.size(); ++i) {
        const auto& b = doc.blocks[i];
        switch (b.kind) {
            case BlockKind::Verdict:
                out += std::string("<h1 class=\"") + (b.pass ? "pass" : "fail") + "\">" +
                       esc_html(b.text) + "</h1>\n";
                break;
            case BlockKind::Heading:
                out += "<h2>" + esc_html(b.text) + "</h2>\n";
                break;
            case BlockKind::Paragraph:
                // The last paragraph is the environment line.
                if (i + 1 == doc.blocks.size()) {
                    out += "<footer>" + esc_html(b.text) + "</footer>\n";
                } else {
                    out += "<p>" + esc_html(b.text) + "</p>\n";
                }
                break;
            case BlockKind::Table: {
                const auto& t = b.table;
                out += "<table>\n<thead><tr>";
                for (const auto& h : t.header) out += "<th>" + esc_html(h) + "</th>";
                out += "</tr></thead>\n<tbody>\n";
                for (const auto& row : t.rows) {
                    out += "<tr>";
                    for (size_t c = 0; c < row.size(); ++c) {
                        std::vector<std::string> cls;
                        if (c < t.numeric.size() && t.numeric[c]) cls.push_back("num");
                        if (row[c].strong) cls.push_back("failcell");
                        out += cls.empty() ? "<td>" : "<td class=\"" + join(cls, " ") + "\">";
                        out += esc_html(row[c].text) + "</td>";
                    }
                    out += "</tr>\n";
                }
                out += "</tbody>\n</table>\n";
                break;
            }
            case BlockKind::Chart:
                if (!b.chart_svg.empty())
                    out += b.chart_svg;
                else
                    out += "<p class=\"chart-missing\" id=\"" + b.chart_id + "\">" +
                           esc_html(b.chart_missing) + "</p>\n";
                break;
        }
    }
    out += "</body>\n</html>\n";
    return out;
}

// ---------------------------------------------------------------- JUnit

std::string time_attr(const std::optional<double>& seconds) {
    if (!finite(seconds) || *seconds < 0) return "0";
    return printf_double("%.3f", *seconds);
}

}  // namespace

std::string render_report_markdown(const json& report) {
    return render_md(build_doc(report, false));
}

std::string render_report_html(const json& report) {
    return render_html_doc(build_doc(report, true));
}

std::string render_junit_xml(const json& report) {
    const auto gates = read_gates(report);
    size_t failures = 0;
    for (const auto& g : gates)
        if (!g.passed) ++failures;
    size_t tests = gates.size() + 1;
    std::string time = time_attr(number(at(at(report, "timings"), "total_s")));
    std::string counts = "tests=\"" + std::to_string(tests) + "\" failures=\"" +
                         std::to_string(failures) + "\" errors=\"0\" skipped=\"0\" time=\"" + time +
                         "\"";
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    out += "<testsuites name=\"edgepack\" " + counts + ">\n";
    out += "  <testsuite name=\"edgepack.gates\" " + counts + ">\n";
    out += "    <properties>\n";
    auto property = [&](const char* name, const json& value) {
        if (value.is_null()) return;
        out += std::string("      <property name=\"") + name + "\" value=\"" +
               esc_plain(plain(value)) + "\"/>\n";
    };
    property("verdict", at(report, "verdict"));
    property("exit_code", at(report, "exit_code"));
    property("edgepack.version", at(at(report, "edgepack"), "version"));
    property("input", at(at(report, "input"), "path"));
    property("recipe", at(at(report, "recipe"), "file"));
    property("baseline", at(at(report, "baseline"), "file"));
    out += "    </properties>\n";
    out += "    <testcase classname=\"edgepack\" name=\"compress\" time=\"" + time + "\"/>\n";
    for (const auto& g : gates) {
        out += std::string("    <testcase classname=\"") +
               (g.baseline ? "edgepack.baseline" : "edgepack.gates") + "\" name=\"" +
               esc_plain(g.name) + "\" time=\"0\"";
        if (g.passed) {
            out += "/>\n";
            continue;
        }
        std::string message = violation(g, true);
        std::string body = g.detail.empty() ? message : u(g.detail);
        if (!g.measured) body = message + (g.detail.empty() ? "" : " (" + u(g.detail) + ")");
        out += ">\n      <failure message=\"" + esc_html(message) + "\" type=\"gate\">" +
               esc_html(body) + "</failure>\n    </testcase>\n";
    }
    out += "  </testsuite>\n</testsuites>\n";
    return out;
}

}  // namespace ep
