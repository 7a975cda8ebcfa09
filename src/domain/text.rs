//! Values taken from a request, made safe to show in an error description or a log line.
//!
//! A key id, subject or scope comes from whoever sent the request: quoted raw, a newline forges a
//! second log line, a bidirectional-override character hides text, and a megabyte of it floods
//! the log. [`shown`] escapes every control and formatting character (`\n`, `\u{202e}`, …) and
//! the backslash, and cuts the value to [`MAX_SHOWN`] characters. Every message that quotes
//! request input goes through it, so the log sink may print messages as they are.
use std::fmt;

/// How many characters of a value are shown; the rest is cut and marked with `…`.
pub const MAX_SHOWN: usize = 100;

/// `value`, escaped and bounded for display (see the module's documentation).
pub fn shown(value: &str) -> Shown<'_> {
    Shown(value)
}

#[derive(Clone, Copy)]
pub struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_SHOWN {
                return f.write_char('…');
            }
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Control characters, and the invisible formatting ones that change how a line reads: bidi
/// overrides and isolates, zero-width characters, line and paragraph separators.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_invisible_characters_are_escaped() {
        assert_eq!(shown("k1").to_string(), "k1");
        assert_eq!(
            shown("k\nINFO forged line").to_string(),
            "k\\nINFO forged line"
        );
        assert_eq!(shown("a\r\tb\\").to_string(), "a\\r\\tb\\\\");
        assert_eq!(shown("x\u{202e}y\u{0}").to_string(), "x\\u{202e}y\\u{0}");
        assert_eq!(shown("ünïcødé").to_string(), "ünïcødé");
        assert_eq!(format!("{:?}", shown("a\"b")), "\"a\"b\"");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "a".repeat(10_000);
        let out = shown(&long).to_string();
        assert_eq!(out.chars().count(), MAX_SHOWN + 1);
        assert!(out.ends_with('…'));
        assert_eq!(shown(&"b".repeat(MAX_SHOWN)).to_string().len(), MAX_SHOWN);
    }
}
