//! Free text people type (justifications, comments, names): length limits,
//! and no control characters or invisible direction marks, which can make a
//! justification read differently on the approver's screen from what it is
//! ("Trojan Source"-style reordering) or break logs and exports.

/// Characters that change the direction text is shown in (Unicode bidi controls and marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Trims `raw` and checks it: at most `max` characters; line breaks and tabs
/// are kept when `multiline`, every other control character and every bidi
/// control is refused. The error is a sentence for the field.
pub fn free_text(raw: &str, max: usize, multiline: bool) -> Result<String, String> {
    let t = raw.trim();
    if t.chars().count() > max {
        return Err(format!("keep it under {max} characters"));
    }
    for c in t.chars() {
        if is_bidi_control(c) {
            return Err(format!(
                "remove the invisible direction mark U+{:04X}: it can make the text read differently from what it is",
                u32::from(c)
            ));
        }
        let allowed_break = multiline && matches!(c, '\n' | '\r' | '\t');
        if (c.is_control() || c == '\u{2028}' || c == '\u{2029}') && !allowed_break {
            return Err(format!("remove the control character U+{:04X}", u32::from(c)));
        }
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_passes_trimmed() {
        assert_eq!(
            free_text("  Istio templates\nfor the mesh  ", 100, true),
            Ok("Istio templates\nfor the mesh".into())
        );
        assert_eq!(free_text("Grüße, 日本語 ok", 100, false), Ok("Grüße, 日本語 ok".into()));
    }

    #[test]
    fn bidi_controls_control_characters_and_long_text_are_refused() {
        let trojan = "approve\u{202E}evil\u{202C} this";
        assert!(free_text(trojan, 100, true).expect_err("bidi").contains("U+202E"));
        assert!(free_text("a\u{2067}b", 100, true).is_err());
        assert!(free_text("bell\u{7}", 100, true).expect_err("control").contains("U+0007"));
        assert!(free_text("one\ntwo", 100, false).is_err(), "a one-line field refuses line breaks");
        assert!(free_text("nul\u{0}", 100, true).is_err());
        assert!(free_text(&"x".repeat(101), 100, true).expect_err("long").contains("100"));
        assert!(free_text(&"é".repeat(100), 100, true).is_ok(), "characters, not bytes");
    }
}
