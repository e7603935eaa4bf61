//! Feedback payloads (API.md §11.2): what a reaction and a note must hold, and what the
//! server adds to a reaction (its emoji's shortcode, and the same without skin tone), as
//! Weave does.
use serde_json::{Map, Value};

/// Why a payload does not fit its feedback type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadProblem(pub String);

/// Largest payload, as JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 1024;

/// Check a payload against its type and complete it: a reaction (`wandb.reaction.1`) is
/// exactly one emoji and gains `alias`, `detoned` and `detoned_alias`; a note
/// (`wandb.note.1`) is 1 to 1024 characters; any payload is at most 1 MiB of JSON.
pub fn check_payload(feedback_type: &str, mut payload: Map<String, Value>) -> Result<Value, PayloadProblem> {
    let invalid = |why: &str| PayloadProblem(format!("Invalid payload for feedback_type {feedback_type}: {why}"));
    match feedback_type {
        "wandb.reaction.1" => {
            let emoji =
                payload.get("emoji").and_then(Value::as_str).ok_or_else(|| invalid("emoji must be a string"))?;
            let Some(found) = emojis::get(emoji) else {
                return Err(PayloadProblem("Value of emoji key in payload must be exactly one emoji".into()));
            };
            let detoned = match found.skin_tone() {
                Some(_) => found.with_skin_tone(emojis::SkinTone::Default).unwrap_or(found),
                None => found,
            };
            payload.insert("alias".into(), Value::from(alias(found.name())));
            payload.insert("detoned".into(), Value::from(detoned.as_str()));
            payload.insert("detoned_alias".into(), Value::from(alias(detoned.name())));
        }
        "wandb.note.1" => {
            let note = payload.get("note").and_then(Value::as_str).ok_or_else(|| invalid("note must be a string"))?;
            let chars = note.chars().count();
            if chars == 0 || chars > MAX_NOTE_CHARS {
                return Err(invalid("a note is 1 to 1024 characters"));
            }
        }
        _ => {}
    }
    let payload = Value::Object(payload);
    if payload.to_string().len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadProblem("Feedback payload too large".into()));
    }
    Ok(payload)
}

/// An emoji's shortcode from its CLDR name: `thumbs up: medium skin tone` →
/// `:thumbs_up_medium_skin_tone:`.
fn alias(name: &str) -> String {
    let words: Vec<&str> = name.split([' ', ':', ',']).filter(|w| !w.is_empty()).collect();
    format!(":{}:", words.join("_"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn payload(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_reaction_is_one_emoji_and_gains_its_shortcode_with_and_without_skin_tone() {
        let out = check_payload("wandb.reaction.1", payload(json!({"emoji": "👍"}))).unwrap();
        assert_eq!(
            out,
            json!({"emoji": "👍", "alias": ":thumbs_up:", "detoned": "👍", "detoned_alias": ":thumbs_up:"})
        );
        let out = check_payload("wandb.reaction.1", payload(json!({"emoji": "👍🏽"}))).unwrap();
        assert_eq!(out["alias"], ":thumbs_up_medium_skin_tone:");
        assert_eq!((out["detoned"].as_str(), out["detoned_alias"].as_str()), (Some("👍"), Some(":thumbs_up:")));
        assert_eq!(
            check_payload("wandb.reaction.1", payload(json!({"emoji": "🎉"}))).unwrap()["alias"],
            ":party_popper:"
        );
        for bad in [json!({"emoji": "👍👍"}), json!({"emoji": "ok"}), json!({"emoji": 1}), json!({})] {
            assert!(check_payload("wandb.reaction.1", payload(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn notes_are_one_to_1024_characters_and_other_types_take_any_payload() {
        assert!(check_payload("wandb.note.1", payload(json!({"note": "fine"}))).is_ok());
        assert!(check_payload("wandb.note.1", payload(json!({"note": ""}))).is_err());
        assert!(check_payload("wandb.note.1", payload(json!({"note": "é".repeat(1024)}))).is_ok());
        assert!(check_payload("wandb.note.1", payload(json!({"note": "x".repeat(1025)}))).is_err());
        assert_eq!(check_payload("custom", payload(json!({"score": 5}))).unwrap(), json!({"score": 5}));
        let big = json!({"blob": "x".repeat(MAX_PAYLOAD_BYTES)});
        assert!(check_payload("custom", payload(big)).is_err());
    }
}
