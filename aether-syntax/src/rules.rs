//! Rules the front end reports (lexical and syntax errors); the full registry is `aether_check::codes`.

use crate::diagnostic::Rule;

/// Define a `pub static` [`Rule`]: `define_rule!(IDENT, "A001", "name", CodeVariant, Severity, "summary");`
#[macro_export]
macro_rules! define_rule {
    ($ident:ident, $id:literal, $name:literal, $code:ident, $sev:ident, $summary:literal) => {
        pub static $ident: $crate::diagnostic::Rule = $crate::diagnostic::Rule {
            id: $id,
            name: $name,
            code: $crate::diagnostic::ResultCode::$code,
            severity: $crate::diagnostic::Severity::$sev,
            summary: $summary,
        };
    };
}

use crate::define_rule as rule;

rule!(
    SYNTAX_ERROR,
    "A001",
    "syntax-error",
    ParseError,
    Error,
    "a token that the grammar does not allow here"
);
rule!(
    UNTERMINATED_STRING,
    "A002",
    "unterminated-string",
    ParseError,
    Error,
    "a string literal that does not end on its own line"
);
rule!(
    TAB_INDENTATION,
    "A003",
    "tab-indentation",
    ParseError,
    Error,
    "a tab character in indentation"
);
rule!(
    INCONSISTENT_DEDENT,
    "A004",
    "inconsistent-dedent",
    ParseError,
    Error,
    "a dedent to a column that no enclosing block opened"
);
rule!(
    INVALID_DURATION_UNIT,
    "A005",
    "invalid-duration-unit",
    ParseError,
    Error,
    "a number followed by letters that are not a duration unit"
);
rule!(
    INVALID_ESCAPE,
    "A006",
    "invalid-escape",
    ParseError,
    Error,
    "an unknown escape sequence in a string literal"
);
rule!(
    INVALID_CHARACTER,
    "A007",
    "invalid-character",
    ParseError,
    Error,
    "a character that is not part of the language"
);
rule!(
    UNQUOTED_GOAL,
    "A008",
    "unquoted-goal",
    ParseError,
    Error,
    "goal text that is not a quoted string"
);
rule!(
    INTEGER_OVERFLOW,
    "A009",
    "integer-overflow",
    ParseError,
    Error,
    "an integer literal that does not fit in 64 bits"
);
rule!(
    UNCLOSED_BRACKET,
    "A010",
    "unclosed-bracket",
    ParseError,
    Error,
    "an opening bracket that is never closed"
);
rule!(
    UNMATCHED_BRACKET,
    "A011",
    "unmatched-bracket",
    ParseError,
    Error,
    "a closing bracket with no matching opening bracket"
);
rule!(
    INVALID_ASSIGNMENT_TARGET,
    "A012",
    "invalid-assignment-target",
    ParseError,
    Error,
    "the left side of `=` is not a variable, index or field"
);
rule!(
    LIST_ITEM_OUTSIDE_LIST,
    "A013",
    "list-item-outside-list",
    ParseError,
    Error,
    "a `-` list item where no list is open"
);
rule!(
    MEMORY_STATEMENT_NOT_CALL,
    "A014",
    "memory-statement-not-call",
    ParseError,
    Error,
    "`memory:` followed by something other than a call"
);
rule!(
    INVALID_TYPE_HINT,
    "A015",
    "invalid-type-hint",
    ParseError,
    Error,
    "a type hint that is not `Name` or `Name[T, ...]`"
);
rule!(
    MALFORMED_ON_ERROR_RULE,
    "A016",
    "malformed-on-error-rule",
    ParseError,
    Error,
    "an `on_error` rule that is not `- when: KIND` then `do: CALL`"
);
rule!(
    UNSUPPORTED_BLOCK,
    "A017",
    "unsupported-block",
    UnsupportedFeature,
    Error,
    "a reserved `agent:` or `visualize:` block"
);
rule!(
    INVALID_UTF8,
    "A018",
    "invalid-utf8",
    IoError,
    Error,
    "a file that is not valid UTF-8"
);
rule!(
    UNREADABLE_FILE,
    "A020",
    "unreadable-file",
    IoError,
    Error,
    "a path that does not exist or cannot be read"
);
rule!(
    INTERNAL_ERROR,
    "A021",
    "internal-error",
    InternalError,
    Error,
    "a bug in the toolchain: a caught panic"
);
rule!(
    NESTING_TOO_DEEP,
    "A022",
    "nesting-too-deep",
    ParseError,
    Error,
    "a line or block structure nested deeper than the toolchain accepts"
);
rule!(
    MISPLACED_STEP_OPTION,
    "A019",
    "misplaced-step-option",
    ParseError,
    Error,
    "`as` or `key=value` options on a list item that is not a workflow step"
);

/// Every rule of this crate, in id order.
pub static ALL: &[&Rule] = &[
    &SYNTAX_ERROR,
    &UNTERMINATED_STRING,
    &TAB_INDENTATION,
    &INCONSISTENT_DEDENT,
    &INVALID_DURATION_UNIT,
    &INVALID_ESCAPE,
    &INVALID_CHARACTER,
    &UNQUOTED_GOAL,
    &INTEGER_OVERFLOW,
    &UNCLOSED_BRACKET,
    &UNMATCHED_BRACKET,
    &INVALID_ASSIGNMENT_TARGET,
    &LIST_ITEM_OUTSIDE_LIST,
    &MEMORY_STATEMENT_NOT_CALL,
    &INVALID_TYPE_HINT,
    &MALFORMED_ON_ERROR_RULE,
    &UNSUPPORTED_BLOCK,
    &INVALID_UTF8,
    &MISPLACED_STEP_OPTION,
    &UNREADABLE_FILE,
    &INTERNAL_ERROR,
    &NESTING_TOO_DEEP,
];
