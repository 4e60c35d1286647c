// ---- runtime helpers (the same in every generated header) -----------------------------
#ifndef MEMBUS_TYPED_RUNTIME_V1
#define MEMBUS_TYPED_RUNTIME_V1

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace membus_typed {

/// A value refused for a field (the message names the field and what it accepts), or a
/// slot text that does not parse as the field's type.
struct field_error : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

using u128 = unsigned __int128;
using i128 = __int128;

inline std::string quote(const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        o += c;
    }
    return o + "\"";
}

template <class T>
inline std::string fmt_int(T v) {
    if constexpr (sizeof(T) <= 8) {
        return std::to_string(v);
    } else {
        bool neg = false;
        u128 u;
        if constexpr (std::is_same_v<T, i128>) {
            neg = v < 0;
            u = neg ? u128(0) - u128(v) : u128(v);
        } else {
            u = v;
        }
        std::string d;
        do {
            d.insert(d.begin(), char('0' + int(u % 10)));
            u /= 10;
        } while (u != 0);
        return neg ? "-" + d : d;
    }
}

/// Sign and maximum of an integer type (std::numeric_limits knows __int128 only in GNU mode).
template <class T>
struct int_traits {
    static constexpr bool is_signed = std::is_signed_v<T>;
    static constexpr u128 max = u128(std::numeric_limits<T>::max());
};
template <>
struct int_traits<i128> {
    static constexpr bool is_signed = true;
    static constexpr u128 max = ~u128(0) >> 1;
};
template <>
struct int_traits<u128> {
    static constexpr bool is_signed = false;
    static constexpr u128 max = ~u128(0);
};

/// Parses a whole decimal integer of type T (an optional sign, digits); false otherwise.
template <class T>
inline bool parse_int(const std::string& s, T& out) {
    size_t i = 0;
    bool neg = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == s.size()) return false;
    constexpr bool is_signed = int_traits<T>::is_signed;
    if (neg && !is_signed) return false;  // as Rust: no sign on an unsigned type
    const u128 limit = neg ? int_traits<T>::max + 1 : int_traits<T>::max;
    u128 acc = 0;
    for (; i < s.size(); i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = unsigned(s[i] - '0');
        if (acc > (limit - d) / 10) return false;
        acc = acc * 10 + d;
    }
    if (neg) {
        if constexpr (is_signed) {
            out = acc == 0 ? T(0) : T(-T(acc - 1) - 1);
        } else {
            out = 0;
        }
    } else {
        out = T(acc);
    }
    return true;
}

template <class F>
inline std::string fmt_float(F v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

template <class F>
inline bool parse_float(const std::string& s, F& out) {
    if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
    const char* b = s.c_str();
    char* e = nullptr;
    errno = 0;
    double d = std::strtod(b, &e);
    if (e != b + s.size()) return false;
    if constexpr (std::is_same_v<F, float>) {
        // strtof would round once; Rust parses to the nearest f32 too.
        out = std::strtof(b, &e);
    } else {
        out = d;
    }
    return true;
}

inline std::string utf8(char32_t c) {
    std::string o;
    if (c < 0x80) {
        o += char(c);
    } else if (c < 0x800) {
        o += char(0xC0 | (c >> 6));
        o += char(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        o += char(0xE0 | (c >> 12));
        o += char(0x80 | ((c >> 6) & 0x3F));
        o += char(0x80 | (c & 0x3F));
    } else {
        o += char(0xF0 | (c >> 18));
        o += char(0x80 | ((c >> 12) & 0x3F));
        o += char(0x80 | ((c >> 6) & 0x3F));
        o += char(0x80 | (c & 0x3F));
    }
    return o;
}

/// Decodes a text that is exactly one UTF-8 character.
inline bool one_char(const std::string& s, char32_t& out) {
    if (s.empty()) return false;
    unsigned char c = static_cast<unsigned char>(s[0]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || s.size() != n) return false;
    char32_t v = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t i = 1; i < n; i++) {
        unsigned char k = static_cast<unsigned char>(s[i]);
        if ((k >> 6) != 2) return false;
        v = (v << 6) | (k & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return false;
    out = v;
    return true;
}

inline bool valid_utf8(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        char32_t v;
        if (n == 0 || i + n > s.size() || !one_char(s.substr(i, n), v)) return false;
        i += n;
    }
    return true;
}

/// Checks a text about to be written to a field: length bound, no NUL, valid UTF-8.
inline void check_text(const char* field, const char* slot, const std::string& text,
                       size_t max_len, const char* allowed) {
    if (text.size() > max_len)
        throw field_error(std::string("field `") + field + "` (slot \"" + slot + "\") does not accept " +
                          quote(text) + " (" + std::to_string(text.size()) +
                          " bytes, longer than max_len = " + std::to_string(max_len) +
                          "): expected " + allowed);
    if (text.find('\0') != std::string::npos || !valid_utf8(text))
        throw field_error(std::string("field `") + field + "` (slot \"" + slot +
                          "\") does not accept a text with a NUL byte or invalid UTF-8: expected " +
                          allowed);
}

[[noreturn]] inline void bad_slot(const char* field, const char* slot, const std::string& text,
                                  const char* allowed) {
    throw field_error(std::string("field `") + field + "` (slot \"" + slot + "\") holds " +
                      quote(text) + ", which does not parse: expected " + allowed);
}

[[noreturn]] inline void bad_value(const char* field, const char* slot, const std::string& shown,
                                   const char* allowed) {
    throw field_error(std::string("field `") + field + "` (slot \"" + slot +
                      "\") does not accept " + shown + ": expected " + allowed);
}

// ---- a small JSON value, for the message codecs -------------------------------------------

/// A parsed JSON value (numbers keep their text, so 64-bit integers stay exact).
struct json {
    enum kind_t { null_k, bool_k, number_k, string_k, array_k, object_k } kind = null_k;
    bool b = false;
    std::string text;  // number text or string value
    std::vector<json> items;
    std::vector<std::pair<std::string, json>> members;

    const json* get(const std::string& key) const {
        for (auto& m : members)
            if (m.first == key) return &m.second;
        return nullptr;
    }
};

inline void put_string(std::string& o, const std::string& s) {
    o += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\r': o += "\\r"; break;
            case '\t': o += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    o += buf;
                } else {
                    o += char(c);
                }
        }
    }
    o += '"';
}

inline void put_json(std::string& o, const json& v) {
    switch (v.kind) {
        case json::null_k: o += "null"; break;
        case json::bool_k: o += v.b ? "true" : "false"; break;
        case json::number_k: o += v.text; break;
        case json::string_k: put_string(o, v.text); break;
        case json::array_k:
            o += '[';
            for (size_t i = 0; i < v.items.size(); i++) {
                if (i) o += ',';
                put_json(o, v.items[i]);
            }
            o += ']';
            break;
        case json::object_k:
            o += '{';
            for (size_t i = 0; i < v.members.size(); i++) {
                if (i) o += ',';
                put_string(o, v.members[i].first);
                o += ':';
                put_json(o, v.members[i].second);
            }
            o += '}';
            break;
    }
}

class json_parser {
   public:
    explicit json_parser(const std::string& s) : s_(s) {}
    json parse_all() {
        json v = value(0);
        ws();
        if (i_ != s_.size()) fail("trailing characters");
        return v;
    }

   private:
    const std::string& s_;
    size_t i_ = 0;
    [[noreturn]] void fail(const char* what) {
        throw std::invalid_argument(std::string("not JSON: ") + what + " at byte " + std::to_string(i_));
    }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) i_++;
    }
    bool lit(const char* w) {
        size_t n = std::strlen(w);
        if (s_.compare(i_, n, w) == 0) {
            i_ += n;
            return true;
        }
        return false;
    }
    unsigned hex4() {
        if (i_ + 4 > s_.size()) fail("short \\u escape");
        unsigned v = 0;
        for (int k = 0; k < 4; k++) {
            char c = s_[i_++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= unsigned(c - '0');
            else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
            else fail("bad \\u escape");
        }
        return v;
    }
    std::string str() {
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string");
        i_++;
        std::string o;
        while (true) {
            if (i_ >= s_.size()) fail("unterminated string");
            char c = s_[i_++];
            if (c == '"') return o;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') {
                o += c;
                continue;
            }
            if (i_ >= s_.size()) fail("unterminated escape");
            char e = s_[i_++];
            switch (e) {
                case '"': o += '"'; break;
                case '\\': o += '\\'; break;
                case '/': o += '/'; break;
                case 'b': o += '\b'; break;
                case 'f': o += '\f'; break;
                case 'n': o += '\n'; break;
                case 'r': o += '\r'; break;
                case 't': o += '\t'; break;
                case 'u': {
                    char32_t cp = hex4();
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (!lit("\\u")) fail("lone surrogate");
                        unsigned lo = hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF) fail("bad surrogate pair");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        fail("lone surrogate");
                    }
                    o += utf8(cp);
                    break;
                }
                default: fail("bad escape");
            }
        }
    }
    json value(int depth) {
        if (depth > 64) fail("nested too deeply");
        ws();
        json v;
        if (i_ >= s_.size()) fail("unexpected end");
        char c = s_[i_];
        if (c == '{') {
            i_++;
            v.kind = json::object_k;
            ws();
            if (i_ < s_.size() && s_[i_] == '}') {
                i_++;
                return v;
            }
            while (true) {
                ws();
                std::string k = str();
                ws();
                if (i_ >= s_.size() || s_[i_++] != ':') fail("expected ':'");
                v.members.emplace_back(k, value(depth + 1));
                ws();
                if (i_ < s_.size() && s_[i_] == ',') {
                    i_++;
                    continue;
                }
                if (i_ < s_.size() && s_[i_] == '}') {
                    i_++;
                    return v;
                }
                fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            i_++;
            v.kind = json::array_k;
            ws();
            if (i_ < s_.size() && s_[i_] == ']') {
                i_++;
                return v;
            }
            while (true) {
                v.items.push_back(value(depth + 1));
                ws();
                if (i_ < s_.size() && s_[i_] == ',') {
                    i_++;
                    continue;
                }
                if (i_ < s_.size() && s_[i_] == ']') {
                    i_++;
                    return v;
                }
                fail("expected ',' or ']'");
            }
        }
        if (c == '"') {
            v.kind = json::string_k;
            v.text = str();
            return v;
        }
        if (lit("true")) {
            v.kind = json::bool_k;
            v.b = true;
            return v;
        }
        if (lit("false")) {
            v.kind = json::bool_k;
            return v;
        }
        if (lit("null")) return v;
        size_t b = i_;
        if (i_ < s_.size() && s_[i_] == '-') i_++;
        while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' ||
                                  s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-'))
            i_++;
        if (b == i_) fail("unexpected character");
        v.kind = json::number_k;
        v.text = s_.substr(b, i_ - b);
        double d;
        if (!parse_float(v.text, d)) fail("bad number");
        return v;
    }
};

inline json parse_json(const std::string& s) { return json_parser(s).parse_all(); }

// Field codecs for message payloads: to_json / from_json per C++ type.
[[noreturn]] inline void bad_field(const std::string& where, const char* expected, const json& v) {
    std::string shown;
    put_json(shown, v);
    throw field_error(where + ": expected " + expected + ", found " + shown);
}

inline json to_json(bool v) {
    json j;
    j.kind = json::bool_k;
    j.b = v;
    return j;
}
template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char32_t>, int> = 0>
inline json to_json(T v) {
    json j;
    j.kind = json::number_k;
    j.text = fmt_int(v);
    return j;
}
template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
inline json to_json(T v) {
    if (!std::isfinite(v)) throw field_error("a non-finite number has no JSON form");
    json j;
    j.kind = json::number_k;
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    j.text = std::string(buf, r.ptr);
    return j;
}
inline json to_json(const std::string& v) {
    if (!valid_utf8(v)) throw field_error("text is not valid UTF-8");
    json j;
    j.kind = json::string_k;
    j.text = v;
    return j;
}
inline json to_json(char32_t v) { return to_json(utf8(v)); }
inline json to_json(const json& v) { return v; }
template <class T>
inline json to_json(const std::optional<T>& v) {
    return v ? to_json(*v) : json{};
}
template <class T>
inline json to_json(const std::vector<T>& v) {
    json j;
    j.kind = json::array_k;
    for (auto& x : v) j.items.push_back(to_json(x));
    return j;
}

inline void from_json(const json& v, bool& out, const std::string& where) {
    if (v.kind != json::bool_k) bad_field(where, "true or false", v);
    out = v.b;
}
template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char32_t>, int> = 0>
inline void from_json(const json& v, T& out, const std::string& where) {
    if (v.kind != json::number_k || !parse_int(v.text, out)) bad_field(where, "an integer in range", v);
}
template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
inline void from_json(const json& v, T& out, const std::string& where) {
    if (v.kind != json::number_k || !parse_float(v.text, out)) bad_field(where, "a number", v);
}
inline void from_json(const json& v, std::string& out, const std::string& where) {
    if (v.kind != json::string_k) bad_field(where, "a string", v);
    out = v.text;
}
inline void from_json(const json& v, char32_t& out, const std::string& where) {
    if (v.kind != json::string_k || !one_char(v.text, out)) bad_field(where, "one character", v);
}
inline void from_json(const json& v, json& out, const std::string&) { out = v; }
template <class T>
inline void from_json(const json& v, std::optional<T>& out, const std::string& where) {
    if (v.kind == json::null_k) {
        out.reset();
        return;
    }
    T x{};
    from_json(v, x, where);
    out = std::move(x);
}
template <class T>
inline void from_json(const json& v, std::vector<T>& out, const std::string& where) {
    if (v.kind != json::array_k) bad_field(where, "an array", v);
    out.clear();
    for (size_t i = 0; i < v.items.size(); i++) {
        T x{};
        from_json(v.items[i], x, where + "[" + std::to_string(i) + "]");
        out.push_back(std::move(x));
    }
}

/// Splits wire bytes into (variant name, payload): a bare name, or a one-key object.
inline std::pair<std::string, json> split_tagged(const std::string& bytes) {
    if (!bytes.empty() && bytes[0] == '{') {
        json v = parse_json(bytes);
        if (v.kind != json::object_k || v.members.size() != 1)
            throw field_error("a tagged message is an object with exactly one key");
        return {v.members[0].first, v.members[0].second};
    }
    return {bytes, json{}};
}

}  // namespace membus_typed

#endif  // MEMBUS_TYPED_RUNTIME_V1
// ---- end of runtime helpers -----------------------------------------------------------
