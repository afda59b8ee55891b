//! The `email-normalizer` rule of `samples/README.md`, as pure functions.
//!
//! The steps are numbered as in that specification; a Go guest implements the same rule
//! and a differential test compares both, so wording and order matter here.

use crate::exports::witplug::plugin::transformer::{Outcome, RecordError};
use crate::witplug::plugin::types::{Field, Record, Value};

/// The rule's configuration, already parsed. Built from the raw `config` values so that
/// the rule itself needs no import and can be unit-tested natively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub email_field: String,
    pub required_fields: Vec<String>,
    pub blocked_domains: Vec<String>,
}

impl Settings {
    /// Parses the raw values of `email-field`, `required-fields` and `blocked-domains`.
    ///
    /// List entries are trimmed and empty entries ignored, so `"a, b,"` means `a` and `b`.
    /// An unset `required-fields` means the email field; a set but empty one means none.
    /// Blocked domains are ASCII-lowercased because addresses are compared lowercased.
    pub fn new(
        email_field: Option<String>,
        required_fields: Option<String>,
        blocked_domains: Option<String>,
    ) -> Self {
        let email_field = email_field.unwrap_or_else(|| "email".to_owned());
        let required_fields = match required_fields {
            Some(names) => split_list(&names).map(str::to_owned).collect(),
            None => vec![email_field.clone()],
        };
        let blocked_domains = blocked_domains
            .as_deref()
            .map(|domains| split_list(domains).map(str::to_ascii_lowercase).collect())
            .unwrap_or_default();
        Self {
            email_field,
            required_fields,
            blocked_domains,
        }
    }
}

/// Applies the rule to one record.
pub fn apply(settings: &Settings, mut record: Record) -> Outcome {
    let email = settings.email_field.as_str();

    // 1. Trim every text value and every text-list element.
    for field in &mut record.fields {
        match &mut field.value {
            Value::Text(text) => trim_in_place(text),
            Value::TextList(items) => items.iter_mut().for_each(trim_in_place),
            _ => {}
        }
    }

    // 2. Required fields, in configured order.
    for name in &settings.required_fields {
        let present = match find(&record, name).map(|field| &field.value) {
            None | Some(Value::Null) => false,
            Some(Value::Text(text)) => !text.is_empty(),
            Some(Value::TextList(items)) => !items.is_empty(),
            Some(_) => true,
        };
        if !present {
            return Outcome::Drop(format!("missing required field `{name}`"));
        }
    }

    // 3 and 4. The email field's kind; `position` is where the addresses go back.
    let Some(position) = record.fields.iter().position(|field| field.name == email) else {
        return Outcome::Keep(record);
    };
    let addresses: Vec<String> = match &record.fields[position].value {
        Value::Null => return Outcome::Keep(record),
        // 5. Collect the addresses.
        Value::Text(text) => normalize_addresses(text.split([',', ';'])),
        Value::TextList(items) => normalize_addresses(items.iter().map(String::as_str)),
        Value::Boolean(_) => return invalid_type(email, "boolean"),
        Value::Integer(_) => return invalid_type(email, "integer"),
        Value::Float(_) => return invalid_type(email, "float"),
        Value::Bytes(_) => return invalid_type(email, "bytes"),
    };
    if addresses.is_empty() {
        return Outcome::Drop(format!("field `{email}` holds no address"));
    }

    // 6. Every address must be valid; the first invalid one is reported.
    if let Some(invalid) = addresses.iter().find(|address| !is_valid_email(address)) {
        return Outcome::Error(RecordError {
            code: "invalid-email".to_owned(),
            message: format!("field `{email}`: `{invalid}` is not a valid email address"),
        });
    }

    // 7. Remove blocked domains.
    let held = addresses.len();
    let mut remaining = match without_blocked(settings, addresses) {
        Ok(remaining) => remaining,
        Err(reason) => return Outcome::Drop(reason),
    };

    // 8. Keep a single untouched address; otherwise one record per remaining address.
    if held == 1
        && let [address] = remaining.as_mut_slice()
    {
        record.fields[position].value = Value::Text(std::mem::take(address));
        return Outcome::Keep(record);
    }
    // The copies are made of the record without its addresses: cloning the full list for
    // every copy would make a field of n addresses cost n² (20,000 took 20 s).
    record.fields[position].value = Value::Null;
    Outcome::Split(
        remaining
            .into_iter()
            .map(|address| {
                let mut copy = record.clone();
                copy.fields[position].value = Value::Text(address);
                copy
            })
            .collect(),
    )
}

/// Whether `address` is `local@domain` as step 6 defines it. Expects it lowercased.
pub fn is_valid_email(address: &str) -> bool {
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || LOCAL_SPECIALS.contains(&b));
    let mut labels = domain.split('.');
    let domain_ok = domain.contains('.') && labels.all(is_valid_label);
    local_ok && domain_ok
}

/// The characters besides `a-z 0-9` allowed in the local part.
const LOCAL_SPECIALS: &[u8] = b".!#$%&'*+/=?^_`{|}~-";

fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Step 7: the addresses whose domain is not blocked, or, when none is left, the drop
/// reason naming the first blocked domain.
pub fn without_blocked(settings: &Settings, addresses: Vec<String>) -> Result<Vec<String>, String> {
    let mut first_blocked = None;
    let remaining: Vec<String> = addresses
        .into_iter()
        .filter(|address| {
            let domain = domain_of(address);
            let blocked = settings.blocked_domains.iter().any(|d| d == domain);
            if blocked && first_blocked.is_none() {
                first_blocked = Some(domain.to_owned());
            }
            !blocked
        })
        .collect();
    if remaining.is_empty() {
        let domain = first_blocked.unwrap_or_default();
        return Err(format!("email domain `{domain}` is blocked"));
    }
    Ok(remaining)
}

/// The part after `@` of an address already known to be valid.
pub fn domain_of(address: &str) -> &str {
    address.split_once('@').map_or("", |(_, domain)| domain)
}

pub fn normalize_addresses<'a>(parts: impl Iterator<Item = &'a str>) -> Vec<String> {
    parts
        .map(|part| trim(part).to_ascii_lowercase())
        .filter(|part| !part.is_empty())
        .collect()
}

fn invalid_type(email: &str, kind: &str) -> Outcome {
    Outcome::Error(RecordError {
        code: "invalid-type".to_owned(),
        message: format!("field `{email}` must be text, found {kind}"),
    })
}

fn find<'a>(record: &'a Record, name: &str) -> Option<&'a Field> {
    record.fields.iter().find(|field| field.name == name)
}

fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(trim).filter(|item| !item.is_empty())
}

/// Trims only the four ASCII characters the specification names (not Unicode spaces).
pub fn trim(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r'])
}

fn trim_in_place(text: &mut String) {
    let trimmed = trim(text);
    if trimmed.len() != text.len() {
        *text = trimmed.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> Value {
        Value::Text(value.to_owned())
    }

    fn list(values: &[&str]) -> Value {
        Value::TextList(values.iter().map(|v| (*v).to_owned()).collect())
    }

    fn record(key: &str, fields: Vec<(&str, Value)>) -> Record {
        Record {
            key: key.to_owned(),
            fields: fields
                .into_iter()
                .map(|(name, value)| Field {
                    name: name.to_owned(),
                    value,
                })
                .collect(),
        }
    }

    fn defaults() -> Settings {
        Settings::new(None, None, None)
    }

    fn drop(reason: &str) -> Outcome {
        Outcome::Drop(reason.to_owned())
    }

    fn error(code: &str, message: &str) -> Outcome {
        Outcome::Error(RecordError {
            code: code.to_owned(),
            message: message.to_owned(),
        })
    }

    #[test]
    fn settings_defaults() {
        assert_eq!(
            defaults(),
            Settings {
                email_field: "email".into(),
                required_fields: vec!["email".into()],
                blocked_domains: vec![],
            }
        );
    }

    #[test]
    fn settings_parse_lists() {
        let settings = Settings::new(
            Some("mail".into()),
            Some(" name, mail ,,".into()),
            Some("Spam.COM,\tjunk.org".into()),
        );
        assert_eq!(settings.email_field, "mail");
        assert_eq!(settings.required_fields, ["name", "mail"]);
        assert_eq!(settings.blocked_domains, ["spam.com", "junk.org"]);
    }

    #[test]
    fn settings_empty_required_means_none() {
        let settings = Settings::new(None, Some(String::new()), None);
        assert!(settings.required_fields.is_empty());
        let outcome = apply(&settings, record("k", vec![("name", text("x"))]));
        assert_eq!(
            outcome,
            Outcome::Keep(record("k", vec![("name", text("x"))]))
        );
    }

    #[test]
    fn keeps_single_address_trimmed_and_lowercased() {
        let input = record(
            "cust-001",
            vec![
                ("name", text(" Ada Lovelace\t")),
                ("email", text("  Ada.Lovelace@Example.COM ")),
                ("seats", Value::Integer(5)),
            ],
        );
        let expected = record(
            "cust-001",
            vec![
                ("name", text("Ada Lovelace")),
                ("email", text("ada.lovelace@example.com")),
                ("seats", Value::Integer(5)),
            ],
        );
        assert_eq!(apply(&defaults(), input), Outcome::Keep(expected));
    }

    #[test]
    fn trims_only_ascii_whitespace() {
        let settings = Settings::new(None, Some(String::new()), None);
        let input = record(
            "k",
            vec![
                ("a", text("\u{a0}x\u{b} ")),
                ("tags", list(&[" a ", "\r\nb"])),
            ],
        );
        let expected = record(
            "k",
            vec![("a", text("\u{a0}x\u{b}")), ("tags", list(&["a", "b"]))],
        );
        assert_eq!(apply(&settings, input), Outcome::Keep(expected));
    }

    #[test]
    fn splits_multi_address_text_in_place() {
        let input = record(
            "cust-002",
            vec![
                ("name", text("Grace")),
                ("email", text("grace@navy.mil; G.Hopper@Example.org,")),
                ("plan", text("team")),
            ],
        );
        let copy = |address: &str| {
            record(
                "cust-002",
                vec![
                    ("name", text("Grace")),
                    ("email", text(address)),
                    ("plan", text("team")),
                ],
            )
        };
        assert_eq!(
            apply(&defaults(), input),
            Outcome::Split(vec![copy("grace@navy.mil"), copy("g.hopper@example.org")])
        );
    }

    #[test]
    fn text_list_gives_addresses() {
        let input = record(
            "k",
            vec![(
                "email",
                list(&["barbara@MIT.edu", " liskov@csail.mit.edu ", " "]),
            )],
        );
        assert_eq!(
            apply(&defaults(), input),
            Outcome::Split(vec![
                record("k", vec![("email", text("barbara@mit.edu"))]),
                record("k", vec![("email", text("liskov@csail.mit.edu"))]),
            ])
        );
    }

    #[test]
    fn single_element_list_is_kept_as_text() {
        let input = record("k", vec![("email", list(&["A@B.io"]))]);
        assert_eq!(
            apply(&defaults(), input),
            Outcome::Keep(record("k", vec![("email", text("a@b.io"))]))
        );
    }

    #[test]
    fn missing_required_fields_in_order() {
        let settings = Settings::new(None, Some("name,plan".into()), None);
        let cases = [
            (vec![("email", text("a@b.io"))], "name"),
            (vec![("name", Value::Null)], "name"),
            (vec![("name", text("  "))], "name"),
            (vec![("name", list(&[]))], "name"),
            (vec![("name", list(&[""])), ("plan", text(""))], "plan"),
            (vec![("name", Value::Integer(0))], "plan"),
        ];
        for (fields, missing) in cases {
            assert_eq!(
                apply(&settings, record("k", fields)),
                drop(&format!("missing required field `{missing}`"))
            );
        }
    }

    #[test]
    fn default_requires_the_email_field() {
        let outcome = apply(&defaults(), record("k", vec![("name", text("Alan"))]));
        assert_eq!(outcome, drop("missing required field `email`"));
    }

    #[test]
    fn absent_or_null_email_keeps_trimmed_record() {
        let settings = Settings::new(None, Some("name".into()), None);
        for fields in [
            vec![("name", text(" Alan "))],
            vec![("name", text(" Alan ")), ("email", Value::Null)],
        ] {
            let mut expected = record("k", fields.clone());
            expected.fields[0].value = text("Alan");
            assert_eq!(
                apply(&settings, record("k", fields)),
                Outcome::Keep(expected)
            );
        }
    }

    #[test]
    fn wrong_kind_is_an_error() {
        let cases = [
            (Value::Boolean(true), "boolean"),
            (Value::Integer(1), "integer"),
            (Value::Float(1.5), "float"),
            (Value::Bytes(vec![1]), "bytes"),
        ];
        for (value, kind) in cases {
            assert_eq!(
                apply(&defaults(), record("k", vec![("email", value)])),
                error(
                    "invalid-type",
                    &format!("field `email` must be text, found {kind}")
                )
            );
        }
    }

    #[test]
    fn no_address_left_is_dropped() {
        let settings = Settings::new(Some("mail".into()), Some(String::new()), None);
        for value in [text(" ,; ; "), list(&[" ", ""]), list(&[]), text("")] {
            assert_eq!(
                apply(&settings, record("k", vec![("mail", value)])),
                drop("field `mail` holds no address")
            );
        }
    }

    #[test]
    fn first_invalid_address_is_reported() {
        let input = record(
            "k",
            vec![("email", text("ok@x.io, Edsger at utexas, also@bad"))],
        );
        assert_eq!(
            apply(&defaults(), input),
            error(
                "invalid-email",
                "field `email`: `edsger at utexas` is not a valid email address"
            )
        );
    }

    #[test]
    fn invalid_address_wins_over_blocked_domain() {
        let settings = Settings::new(None, None, Some("spam.com".into()));
        let input = record("k", vec![("email", text("a@spam.com, nope"))]);
        assert_eq!(
            apply(&settings, input),
            error(
                "invalid-email",
                "field `email`: `nope` is not a valid email address"
            )
        );
    }

    #[test]
    fn validity() {
        let valid = [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "!#$%&'*+/=?^_`{|}~-@x-1.y2",
            "..@a.b",
            "a@1.2",
        ];
        let invalid = [
            "",
            "@b.co",
            "a@",
            "a@b",
            "a@@b.co",
            "a@b@c.co",
            "a b@c.co",
            "a@b..co",
            "a@.b.co",
            "a@b.co.",
            "a@-b.co",
            "a@b-.co",
            "a@b_c.co",
            "a(b)@c.co",
            "é@b.co",
            "A@b.co",
            "a@B.co",
        ];
        for address in valid {
            assert!(is_valid_email(address), "{address} should be valid");
        }
        for address in invalid {
            assert!(!is_valid_email(address), "{address} should be invalid");
        }
    }

    #[test]
    fn blocked_domains_are_removed() {
        let settings = Settings::new(None, None, Some("spam.com, Junk.org".into()));
        let input = record("k", vec![("email", text("a@spam.com;b@ok.io;c@junk.org"))]);
        assert_eq!(
            apply(&settings, input),
            Outcome::Split(vec![record("k", vec![("email", text("b@ok.io"))])])
        );
    }

    #[test]
    fn all_blocked_names_the_first_domain() {
        let settings = Settings::new(None, None, Some("junk.org,spam.com".into()));
        let input = record("k", vec![("email", text("a@SPAM.com, b@junk.org"))]);
        assert_eq!(
            apply(&settings, input),
            drop("email domain `spam.com` is blocked")
        );
    }

    #[test]
    fn subdomain_is_not_blocked() {
        let settings = Settings::new(None, None, Some("spam.com".into()));
        let input = record("k", vec![("email", text("a@mail.spam.com"))]);
        assert_eq!(
            apply(&settings, input),
            Outcome::Keep(record("k", vec![("email", text("a@mail.spam.com"))]))
        );
    }

    #[test]
    fn first_of_duplicate_email_fields_is_used() {
        let input = record(
            "k",
            vec![
                ("email", text("A@b.io")),
                ("email", text(" not an address ")),
            ],
        );
        assert_eq!(
            apply(&defaults(), input),
            Outcome::Keep(record(
                "k",
                vec![("email", text("a@b.io")), ("email", text("not an address"))]
            ))
        );
    }
}
