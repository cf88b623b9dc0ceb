//! Encoder framing vectors: each rule of SSE-SPEC.md "What this means for the
//! encoder", checked on the exact bytes.

use std::time::Duration;

use tower_sse::{EncodedEvent, Event, LastEventId};

fn wire(event: Event) -> String {
    let encoded = event.encode().expect("valid event");
    String::from_utf8(encoded.into_bytes().to_vec()).expect("utf-8")
}

#[test]
fn data_is_written_with_one_space_after_the_colon() {
    assert_eq!(wire(Event::new().data("hello")), "data: hello\n\n");
}

#[test]
fn leading_space_in_data_survives() {
    assert_eq!(wire(Event::new().data("  two")), "data:   two\n\n");
}

#[test]
fn empty_data_is_still_one_data_line() {
    assert_eq!(wire(Event::new().data("")), "data: \n\n");
}

#[test]
fn lf_in_data_is_split_into_lines() {
    assert_eq!(wire(Event::new().data("a\nb")), "data: a\ndata: b\n\n");
}

#[test]
fn crlf_in_data_is_one_line_break() {
    assert_eq!(wire(Event::new().data("a\r\nb")), "data: a\ndata: b\n\n");
}

#[test]
fn lone_cr_in_data_is_a_line_break() {
    assert_eq!(wire(Event::new().data("a\rb")), "data: a\ndata: b\n\n");
}

#[test]
fn cr_cr_lf_is_two_line_breaks() {
    assert_eq!(
        wire(Event::new().data("a\r\r\nb")),
        "data: a\ndata: \ndata: b\n\n"
    );
}

#[test]
fn lf_cr_is_two_line_breaks() {
    assert_eq!(
        wire(Event::new().data("a\n\rb")),
        "data: a\ndata: \ndata: b\n\n"
    );
}

#[test]
fn trailing_line_break_keeps_an_empty_last_line() {
    assert_eq!(wire(Event::new().data("a\n")), "data: a\ndata: \n\n");
    assert_eq!(
        wire(Event::new().data("a\r\n\r\n")),
        "data: a\ndata: \ndata: \n\n"
    );
}

#[test]
fn data_of_only_line_breaks_keeps_every_line() {
    assert_eq!(wire(Event::new().data("\n")), "data: \ndata: \n\n");
    assert_eq!(wire(Event::new().data("\r")), "data: \ndata: \n\n");
}

#[test]
fn nul_and_unicode_in_data_pass_through() {
    assert_eq!(
        wire(Event::new().data("a\0b ünï 🦀")),
        "data: a\0b ünï 🦀\n\n"
    );
}

#[test]
fn calling_data_twice_appends_a_line() {
    assert_eq!(
        wire(Event::new().data("a").data("b")),
        "data: a\ndata: b\n\n"
    );
}

#[test]
fn colon_in_data_is_not_special() {
    assert_eq!(wire(Event::new().data(": x")), "data: : x\n\n");
}

#[test]
fn fields_set_before_data_come_first() {
    assert_eq!(
        wire(
            Event::new()
                .id(12345)
                .event("update")
                .retry(Duration::from_millis(1500))
                .data("{}")
        ),
        "id: 12345\nevent: update\nretry: 1500\ndata: {}\n\n"
    );
}

#[test]
fn retry_is_whole_milliseconds() {
    assert_eq!(
        wire(Event::new().retry(Duration::from_micros(2_999_999))),
        "retry: 2999\n\n"
    );
}

#[test]
fn ids_may_be_numbers_or_strings() {
    assert_eq!(wire(Event::new().id(7u8)), "id: 7\n\n");
    assert_eq!(wire(Event::new().id(-3i64)), "id: -3\n\n");
    assert_eq!(wire(Event::new().id("abc")), "id: abc\n\n");
    assert_eq!(wire(Event::new().id(String::from("x-1"))), "id: x-1\n\n");
}

#[test]
fn empty_id_is_written_to_reset_the_client_id() {
    assert_eq!(wire(Event::new().id("").data("x")), "id: \ndata: x\n\n");
}

#[test]
fn leading_space_in_event_type_survives() {
    assert_eq!(
        wire(Event::new().id("1 2").event(" e").data("x")),
        "id: 1 2\nevent:  e\ndata: x\n\n"
    );
}

#[test]
fn ids_that_would_not_come_back_as_last_event_id_are_errors() {
    let long = "x".repeat(LastEventId::MAX_LEN + 1);
    for id in [
        "a\tb",
        "\u{1b}[0m",
        "a\u{7f}",
        "a\u{85}b",
        "\u{9f}",
        " 1",
        "1 ",
        long.as_str(),
    ] {
        let error = Event::new().id(id).data("x").encode().unwrap_err();
        assert!(error.is_invalid_id(), "{id:?}");
        assert!(LastEventId::new(id).is_err(), "{id:?}");
    }
    for id in [
        "1 2",
        "\u{a0}",
        "é-7",
        "🌍",
        &"x".repeat(LastEventId::MAX_LEN),
    ] {
        assert!(Event::new().id(id).encode().is_ok(), "{id:?}");
        assert!(LastEventId::new(id).is_ok(), "{id:?}");
    }
}

#[test]
fn an_id_error_names_the_character_and_where_it_is() {
    let error = Event::new().id("abc\u{85}").encode().unwrap_err();
    assert_eq!(error.invalid_char(), Some('\u{85}'));
    assert_eq!(error.position(), Some(3));
    assert_eq!(
        error.to_string(),
        "sse event id has U+0085 at byte 3: an id cannot hold a control character"
    );
    let error = Event::new().id("7 ").encode().unwrap_err();
    assert_eq!(
        (error.invalid_char(), error.position()),
        (Some(' '), Some(1))
    );
    assert!(error.to_string().contains("space at byte 1"), "{error}");
    let error = Event::new().id("x".repeat(2000)).encode().unwrap_err();
    assert_eq!((error.invalid_char(), error.position()), (None, None));
    assert!(error.to_string().contains("2000 bytes"), "{error}");
}

#[test]
fn an_event_type_error_names_the_character_and_where_it_is() {
    let error = Event::new().event("update\r\nid: 9").encode().unwrap_err();
    assert!(error.is_invalid_event_type());
    assert_eq!(
        (error.invalid_char(), error.position()),
        (Some('\r'), Some(6))
    );
    assert_eq!(
        error.to_string(),
        "sse event type has U+000D at byte 6: a type cannot hold CR or LF"
    );
}

#[test]
fn comment_lines_each_start_with_a_colon() {
    assert_eq!(
        wire(Event::new().comment("one\ntwo\r\nthree")),
        ": one\n: two\n: three\n\n"
    );
    assert_eq!(wire(Event::new().comment("")), ":\n\n");
}

#[test]
fn empty_event_is_a_blank_line() {
    assert_eq!(wire(Event::new()), "\n");
}

#[test]
fn never_writes_a_bom_or_cr() {
    let encoded = wire(
        Event::new()
            .id(1)
            .event("e")
            .comment("c\r\nd")
            .data("\u{feff}x\r\ny\rz"),
    );
    assert!(!encoded.contains('\r'));
    assert!(!encoded.starts_with('\u{feff}'));
}

#[test]
fn id_with_line_break_is_an_error() {
    for id in ["a\nb", "a\rb", "a\r\nb", "\n"] {
        let error = Event::new().id(id).data("x").encode().unwrap_err();
        assert!(error.is_invalid_id(), "{id:?}");
    }
}

#[test]
fn id_with_nul_is_an_error() {
    let error = Event::new().id("a\0b").encode().unwrap_err();
    assert!(error.is_invalid_id());
    assert!(error.to_string().contains("id"));
}

#[test]
fn event_type_with_line_break_is_an_error() {
    for name in ["a\nb", "a\rb", "update\r\nid: 9"] {
        let error = Event::new().event(name).data("x").encode().unwrap_err();
        assert!(error.is_invalid_event_type(), "{name:?}");
    }
}

#[test]
fn event_type_may_hold_nul() {
    assert_eq!(wire(Event::new().event("a\0b")), "event: a\0b\n\n");
}

#[test]
fn first_error_is_kept() {
    let event = Event::new().event("x\n").id("y\n").data("z");
    assert!(event.error().is_some_and(|e| e.is_invalid_event_type()));
    assert!(event.encode().unwrap_err().is_invalid_event_type());
}

#[test]
fn a_valid_event_reports_no_error() {
    assert!(Event::new().id(1).data("x").error().is_none());
}

#[test]
fn error_after_data_still_rejects_the_event() {
    let error = Event::new().data("ok").id("bad\n").encode().unwrap_err();
    assert!(error.is_invalid_id());
}

#[test]
fn encoded_event_is_shared_not_copied() {
    let encoded = Event::new().data("shared").encode().unwrap();
    let copy = encoded.clone();
    assert_eq!(encoded.as_bytes().as_ptr(), copy.as_bytes().as_ptr());
    assert_eq!(
        EncodedEvent::try_from(Event::new().data("shared")).unwrap(),
        copy
    );
}

#[cfg(feature = "json")]
mod json {
    use super::*;

    #[derive(serde::Serialize)]
    struct Price<'a> {
        symbol: &'a str,
        cents: u64,
    }

    #[test]
    fn json_data_is_one_data_line() {
        let event = Event::new().event("price").json_data(&Price {
            symbol: "AB\nC",
            cents: 1234,
        });
        assert_eq!(
            wire(event),
            "event: price\ndata: {\"symbol\":\"AB\\nC\",\"cents\":1234}\n\n"
        );
    }

    #[test]
    fn raw_json_with_line_breaks_is_split() {
        let raw = serde_json::value::RawValue::from_string("{\n  \"a\": 1\n}".into()).unwrap();
        assert_eq!(
            wire(Event::new().json_data(&raw)),
            "data: {\ndata:   \"a\": 1\ndata: }\n\n"
        );
    }

    #[test]
    fn json_serialization_error_is_typed() {
        struct Fails;
        impl serde::Serialize for Fails {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let error = Event::new()
            .data("kept?")
            .json_data(&Fails)
            .encode()
            .unwrap_err();
        assert!(error.is_json());
        assert!(std::error::Error::source(&error).is_some());
    }
}
