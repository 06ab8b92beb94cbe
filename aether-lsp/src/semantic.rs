//! Semantic tokens (full document) from the lexer, with names classified by the name index,
//! so editors without an `.aether` grammar still highlight.

use aether_syntax::lexer::lex;
use aether_syntax::token::Tok;
use lsp_types::{SemanticToken, SemanticTokenType, SemanticTokens, SemanticTokensLegend};

use crate::document::Document;
use crate::index::DefKind;
use crate::server::Analysed;

/// The legend, in the order of the indices below.
const TYPES: [SemanticTokenType; 10] = [
    SemanticTokenType::KEYWORD,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::COMMENT,
    SemanticTokenType::OPERATOR,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::NAMESPACE,
    SemanticTokenType::PARAMETER,
];
const KEYWORD: u32 = 0;
const VARIABLE: u32 = 1;
const FUNCTION: u32 = 2;
const STRING: u32 = 3;
const NUMBER: u32 = 4;
const COMMENT: u32 = 5;
const OPERATOR: u32 = 6;
const PROPERTY: u32 = 7;
const NAMESPACE: u32 = 8;
const PARAMETER: u32 = 9;

pub(crate) fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: Vec::new(),
    }
}

fn kind_of(tok: &Tok<'_>, after_dot: bool, start: usize, a: &Analysed) -> Option<u32> {
    Some(match tok {
        Tok::Ident(_) => {
            let at = start as u32;
            if let Some(n) = a.index.native_at(at) {
                if n.name.is_empty() {
                    NAMESPACE
                } else {
                    FUNCTION
                }
            } else if let Some((def, _)) = a.index.def_at(at) {
                match a.index.defs[def].kind {
                    DefKind::Action | DefKind::Workflow => FUNCTION,
                    DefKind::Parameter => PARAMETER,
                    DefKind::Step | DefKind::Variable => VARIABLE,
                }
            } else if after_dot {
                PROPERTY
            } else {
                VARIABLE
            }
        }
        Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) => NUMBER,
        Tok::Str(_) | Tok::UnquotedText => STRING,
        Tok::Memory if a.index.native_at(start as u32).is_some() => NAMESPACE,
        Tok::Plus
        | Tok::Minus
        | Tok::Star
        | Tok::Slash
        | Tok::Percent
        | Tok::EqEq
        | Tok::NotEq
        | Tok::Lt
        | Tok::Le
        | Tok::Gt
        | Tok::Ge
        | Tok::Bang
        | Tok::AndAnd
        | Tok::OrOr
        | Tok::Assign
        | Tok::Dash => OPERATOR,
        Tok::Newline
        | Tok::Indent
        | Tok::Dedent
        | Tok::ReservedBlock(_)
        | Tok::LParen
        | Tok::RParen
        | Tok::LBracket
        | Tok::RBracket
        | Tok::LBrace
        | Tok::RBrace
        | Tok::Comma
        | Tok::Colon
        | Tok::Dot => return None,
        _ => KEYWORD,
    })
}

pub(crate) fn tokens(a: &Analysed, doc: &Document) -> SemanticTokens {
    let text = &doc.text;
    let lexed = lex(text);
    // Comments: the lexer's side table (the formatter keeps them from it too).
    let mut spans: Vec<(usize, usize, u32)> = lexed
        .comments
        .iter()
        .map(|c| (c.start as usize, c.end as usize, COMMENT))
        .collect();
    let mut after_dot = false;
    for (start, tok, end) in &lexed.tokens {
        if end <= start {
            continue;
        }
        if let Some(kind) = kind_of(tok, after_dot, *start, a) {
            spans.push((*start, *end, kind));
        }
        after_dot = matches!(tok, Tok::Dot);
    }
    spans.sort_by_key(|s| s.0);
    let mut data = Vec::with_capacity(spans.len());
    let (mut prev_line, mut prev_col) = (0u32, 0u32);
    for (start, end, kind) in spans {
        let a = doc.position(start);
        let b = doc.position(end);
        // A token never spans lines here (strings end on their line).
        if b.line != a.line || b.character <= a.character {
            continue;
        }
        let delta_line = a.line - prev_line;
        let delta_start = if delta_line == 0 {
            a.character - prev_col
        } else {
            a.character
        };
        data.push(SemanticToken {
            delta_line,
            delta_start,
            length: b.character - a.character,
            token_type: kind,
            token_modifiers_bitset: 0,
        });
        prev_line = a.line;
        prev_col = a.character;
    }
    SemanticTokens {
        result_id: None,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_keywords_and_names() {
        let text = "# top\nlet x = memory.recall(\"q\") // end\nprint(x)\n";
        let doc = Document::new(text.to_string(), 1);
        let registry = { aether_runtime::function_table().registry().clone() };
        let analysis = crate::analysis::analyze(text, &registry);
        let index = crate::index::Index::build(&analysis.script, &|m| registry.has_module(m));
        let a = Analysed {
            version: 1,
            analysis,
            index,
        };
        let toks = tokens(&a, &doc).data;
        let kinds: Vec<u32> = toks.iter().map(|t| t.token_type).collect();
        assert_eq!(
            kinds,
            vec![
                COMMENT, KEYWORD, VARIABLE, OPERATOR, NAMESPACE, FUNCTION, STRING, COMMENT,
                FUNCTION, VARIABLE
            ]
        );
        // `let` on line 1, column 0.
        assert_eq!(
            (toks[1].delta_line, toks[1].delta_start, toks[1].length),
            (1, 0, 3)
        );
    }
}
