//! SQL text for the simple query protocol, where nothing can be bound: a value from outside the
//! code goes in as hex digits (`convert_from('\x…'::bytea, 'UTF8')`, decoded by the server),
//! numbers and booleans as their digits, ids in their canonical form. No character of a value
//! ever reaches the statement's text as itself. Used where one message must carry a whole
//! transaction: one Sync, so the server answers in one flush (see `edge::db`).

use babybook_jobs::Id;

/// A text value: `convert_from('\x…'::bytea, 'UTF8')`.
pub fn text(value: &str) -> String {
    format!(
        "convert_from('\\x{}'::bytea, 'UTF8')",
        crate::hex::encode(value.as_bytes())
    )
}

/// `ARRAY[…]::<type>[]` of already-safe items (an empty one is typed, so the server knows it).
fn array(items: impl Iterator<Item = String>, element: &str) -> String {
    let items: Vec<String> = items.collect();
    format!("ARRAY[{}]::{element}[]", items.join(","))
}

pub fn text_array<'a>(values: impl Iterator<Item = &'a str>) -> String {
    array(values.map(text), "text")
}

/// Ids as `uuid[]`; an [`Id`] prints only hex digits and hyphens.
pub fn uuid_array(ids: impl Iterator<Item = Id>) -> String {
    array(ids.map(|id| format!("'{id}'")), "uuid")
}

pub fn bool_array(values: impl Iterator<Item = bool>) -> String {
    array(values.map(|b| b.to_string()), "bool")
}

/// Byte strings as `bytea[]`, each as hex digits.
pub fn bytea_array<'a>(values: impl Iterator<Item = &'a [u8]>) -> String {
    array(values.map(bytea), "bytea")
}

/// A byte string: `'\x…'::bytea`.
pub fn bytea(value: &[u8]) -> String {
    format!("'\\x{}'::bytea", crate::hex::encode(value))
}

/// Integers as `int8[]`.
pub fn int8_array(values: impl Iterator<Item = i64>) -> String {
    array(values.map(|n| n.to_string()), "int8")
}

/// Integers as `int4[]`, `None` as `NULL`.
pub fn int_array(values: impl Iterator<Item = Option<i32>>) -> String {
    array(
        values.map(|v| v.map_or_else(|| "NULL".to_owned(), |n| n.to_string())),
        "int4",
    )
}

/// One transaction as one message: `BEGIN`, the settings every unit of work starts with (the
/// statement timeout and the account RLS reads, both transaction-local), the statements, `COMMIT`.
/// An error in a statement ends the message there; the transaction is then rolled back.
pub fn transaction(statement_ms: u32, account: Option<Id>, statements: &[String]) -> String {
    let account = account.map(|id| id.to_string()).unwrap_or_default();
    format!(
        "BEGIN; SELECT set_config('statement_timeout', '{statement_ms}', true), set_config('app.account_id', '{account}', true); {}; COMMIT",
        statements.join("; ")
    )
}

/// One signed-in read as one message: `BEGIN`, the settings with the account set only through
/// `session_account` (a session that ended raises SQLSTATE 28000 and nothing after it runs), the
/// statements, `COMMIT`. The session id goes in as hex ([`text`]), the account as its canonical
/// form.
pub fn session_transaction(statement_ms: u32, sid: &str, account: Id, statements: &[String]) -> String {
    format!(
        "BEGIN; SELECT set_config('statement_timeout', '{statement_ms}', true), \
         set_config('app.account_id', session_account({}, '{account}'), true); {}; COMMIT",
        text(sid),
        statements.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_become_hex_arrays_are_typed_and_a_transaction_sets_its_account() {
        assert_eq!(text("a'b"), "convert_from('\\x612762'::bytea, 'UTF8')");
        assert_eq!(text_array([].into_iter()), "ARRAY[]::text[]");
        assert_eq!(bool_array([true, false].into_iter()), "ARRAY[true,false]::bool[]");
        assert_eq!(int_array([Some(-1), None].into_iter()), "ARRAY[-1,NULL]::int4[]");
        assert_eq!(int8_array([7, -2].into_iter()), "ARRAY[7,-2]::int8[]");
        assert_eq!(
            bytea_array([&[0xab, 0x01][..]].into_iter()),
            "ARRAY['\\xab01'::bytea]::bytea[]"
        );
        let id = Id::parse("0b0e6f1c-2a4d-4c8e-9a51-3f5d2b7c8e90").unwrap();
        assert_eq!(
            uuid_array([id].into_iter()),
            "ARRAY['0b0e6f1c-2a4d-4c8e-9a51-3f5d2b7c8e90']::uuid[]"
        );
        assert_eq!(
            transaction(10_000, Some(id), &["SELECT 1".into(), "SELECT 2".into()]),
            "BEGIN; SELECT set_config('statement_timeout', '10000', true), \
             set_config('app.account_id', '0b0e6f1c-2a4d-4c8e-9a51-3f5d2b7c8e90', true); SELECT 1; SELECT 2; COMMIT"
        );
    }

    #[test]
    fn a_signed_in_read_checks_its_session_in_the_statement_that_sets_its_account() {
        let id = Id::parse("0b0e6f1c-2a4d-4c8e-9a51-3f5d2b7c8e90").unwrap();
        let sql = session_transaction(5_000, "s'; DROP TABLE x; --", id, &["SELECT 1".into()]);
        assert!(sql.starts_with("BEGIN; SELECT set_config('statement_timeout', '5000', true), set_config('app.account_id', session_account(convert_from('\\x"));
        assert!(
            sql.ends_with("'0b0e6f1c-2a4d-4c8e-9a51-3f5d2b7c8e90'), true); SELECT 1; COMMIT"),
            "{sql}"
        );
        assert!(!sql.contains("DROP"), "the session id never reaches the text as itself");
    }

    proptest! {
        /// Whatever a value holds, the text carries only the wrapper and hex digits: no quote,
        /// backslash, semicolon or comment of the value can end the literal.
        #[test]
        fn no_character_of_a_value_reaches_the_text(value in any::<String>()) {
            let literal = text(&value);
            let inner = literal
                .strip_prefix("convert_from('\\x")
                .and_then(|rest| rest.strip_suffix("'::bytea, 'UTF8')"))
                .expect("the wrapper");
            prop_assert!(inner.bytes().all(|b| b.is_ascii_hexdigit()));
            prop_assert_eq!(inner.len(), 2 * value.len());
        }
    }
}
