//! Makes guest output safe to print on the user's terminal. A guest's console log can hold
//! control sequences that make a terminal *answer* (cursor position reports, device
//! attributes, colour and clipboard queries, ENQ): printed verbatim by `vm console --tail`,
//! the terminal types the answer into the user's shell. Only text, line breaks, tabs and
//! colour (SGR) sequences survive; every other control sequence is dropped whole.

/// Returns `text` with every control sequence removed except SGR (`ESC [ params m`).
pub fn strip_terminal_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' | '\r' => out.push(c),
            '\u{1b}' => match chars.next() {
                Some('[') => csi(&mut chars, &mut out),
                // OSC, DCS, SOS, PM, APC: strings up to ST (ESC \) or BEL.
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // Two- and three-character escapes (ESC Z asks for device attributes,
                // ESC ( B selects a charset): drop the intermediates and the final byte.
                Some(_) => {
                    while chars
                        .next_if(|c| ('\u{20}'..='\u{2f}').contains(c))
                        .is_some()
                    {}
                }
                None => {}
            },
            // 8-bit CSI.
            '\u{9b}' => csi(&mut chars, &mut out),
            // 8-bit OSC, DCS, SOS, PM, APC.
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Reads a CSI sequence after its introducer; keeps it only when it is SGR.
fn csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    let mut params = String::new();
    for c in chars.by_ref() {
        match c {
            '\u{30}'..='\u{3f}' | '\u{20}'..='\u{2f}' => params.push(c),
            '\u{40}'..='\u{7e}' => {
                if c == 'm' && params.chars().all(|p| p.is_ascii_digit() || p == ';') {
                    out.push_str("\u{1b}[");
                    out.push_str(&params);
                    out.push('m');
                }
                return;
            }
            // Malformed: abandon the sequence, keep what follows.
            _ => {
                if !c.is_control() {
                    out.push(c);
                }
                return;
            }
        }
    }
}

/// Skips a control string up to its terminator (ST as ESC \ or 0x9c, or BEL).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                chars.next_if_eq(&'\\');
                return;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_terminal_controls as strip;

    #[test]
    fn queries_that_make_a_terminal_answer_are_dropped() {
        // Cursor position report, device status, primary/secondary device attributes.
        assert_eq!(strip("a\x1b[6nb\x1b[5nc\x1b[cd\x1b[>0ce"), "abcde");
        // DECRQM, window size reports, DECID, ENQ.
        assert_eq!(strip("x\x1b[?2026$py\x1b[18tz\x1bZw\x05v"), "xyzwv");
        // OSC colour query (BEL and ST terminated), clipboard write, DCS XTGETTCAP.
        assert_eq!(
            strip("1\x1b]11;?\x072\x1b]52;c;aGVsbG8=\x1b\\3\x1bP+q544e\x1b\\4"),
            "1234"
        );
        // 8-bit CSI and OSC.
        assert_eq!(strip("p\u{9b}6nq\u{9d}10;?\u{9c}r"), "pqr");
    }

    #[test]
    fn text_line_breaks_and_colour_survive() {
        let log = "Booting\r\n\x1b[1;32mOK\x1b[0m ready\tNOVACRON-GUEST-READY\n";
        assert_eq!(strip(log), log);
    }

    #[test]
    fn cursor_movement_and_truncated_sequences_are_dropped() {
        assert_eq!(strip("a\x1b[2J\x1b[Hb\x1b[10;5Hc"), "abc");
        assert_eq!(strip("end\x1b["), "end");
        assert_eq!(strip("end\x1b]0;title"), "end");
        assert_eq!(strip("end\x1b"), "end");
    }
}
