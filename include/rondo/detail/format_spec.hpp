#pragma once
// What rondo's fmt formatters share: parsing their one-letter specs, and the error for any other
// spec. Compile-time checked format strings (fmt's default in C++20) run parse() in a constant
// expression, so an unknown spec in a literal is a compile error and fmt::runtime() strings
// throw fmt::format_error at run time.

#include <fmt/format.h>

#include <cstddef>
#include <string_view>

namespace rondo::detail {

/// Throws fmt::format_error naming the spec, the type and the specs it takes. Not constexpr on
/// purpose: reaching it during compile-time checking makes the format string ill-formed.
[[noreturn]] inline void throw_unknown_format_spec(std::string_view type, std::string_view spec,
                                                   std::string_view allowed) {
  throw fmt::format_error(
      fmt::format("rondo: unknown format spec '{}' for {} (it takes {})", spec, type, allowed));
}

/// Parses the spec of a rondo formatter that takes '{}' and, when `letter` is not 0, '{:letter}'.
/// Returns true for the letter and leaves ctx at the closing brace, as fmt requires.
template <class ParseContext>
constexpr bool parse_letter_spec(ParseContext& ctx, std::string_view type, char letter,
                                 std::string_view allowed) {
  auto it = ctx.begin();
  auto end = ctx.end();
  auto close = it;
  while (close != end && *close != '}') ++close;
  if (close == it) return false;
  if (letter != 0 && close - it == 1 && *it == letter) return (ctx.advance_to(close), true);
  throw_unknown_format_spec(type, std::string_view(&*it, static_cast<std::size_t>(close - it)),
                            allowed);
}

/// Base of the formatters that take no spec ('{}' only): the parse they all share. Derived names
/// its type for the error (`static constexpr std::string_view type_name`).
template <class Derived>
struct plain_formatter {
  template <class ParseContext>
  constexpr auto parse(ParseContext& ctx) -> decltype(ctx.begin()) {
    parse_letter_spec(ctx, Derived::type_name, 0, "'{}' only");
    return ctx.begin();
  }
};

}  // namespace rondo::detail
