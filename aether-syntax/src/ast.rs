//! The syntax tree: every node carries its byte span.

use crate::span::Span;

/// A whole file.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `goal: "text"` or the legacy `intent: "text"`.
    Goal(Goal),
    /// `meta:`, `metadata:`, `policy:`, `require:`, `plugin_contract:`.
    Mapping(MappingBlock),
    OnError(OnErrorBlock),
    Action(Action),
    Workflow(Workflow),
    /// A reserved `agent:` / `visualize:` block (already reported).
    Reserved {
        name: String,
        span: Span,
    },
    Stmt(Stmt),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Goal(g) => g.span,
            Item::Mapping(m) => m.span,
            Item::OnError(o) => o.span,
            Item::Action(a) => a.span,
            Item::Workflow(w) => w.span,
            Item::Reserved { span, .. } => *span,
            Item::Stmt(s) => s.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Goal {
    /// `true` for the legacy `intent:` spelling.
    pub legacy: bool,
    pub keyword_span: Span,
    /// `None` when the text was unquoted (reported by the parser).
    pub value: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingKind {
    Meta,
    Metadata,
    Policy,
    Require,
    PluginContract,
}

impl MappingKind {
    pub fn keyword(self) -> &'static str {
        match self {
            MappingKind::Meta => "meta",
            MappingKind::Metadata => "metadata",
            MappingKind::Policy => "policy",
            MappingKind::Require => "require",
            MappingKind::PluginContract => "plugin_contract",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MappingBlock {
    pub kind: MappingKind,
    pub keyword_span: Span,
    pub entries: Vec<MapEntry>,
    pub span: Span,
}

/// `key: value` in a mapping block or workflow settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MapEntry {
    pub key: String,
    pub key_span: Span,
    pub value: MapValue,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MapValue {
    Expr(Expr),
    /// An indented block of `- item` lines.
    List(Vec<ListItem>),
    /// An indented block of `key: value` lines.
    Map(Vec<MapEntry>),
}

/// `- expr [as name] [key=value ...]`: a list item; the options only mean something in `steps:`.
#[derive(Clone, Debug, PartialEq)]
pub struct ListItem {
    pub value: Expr,
    pub binding: Option<Name>,
    pub options: Vec<StepOption>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepOption {
    pub name: Name,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OnErrorBlock {
    pub rules: Vec<OnErrorRule>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OnErrorRule {
    /// The error kind after `when:` (a code name or alias).
    pub kind: Name,
    /// The `do:` call.
    pub handler: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    pub name: Name,
    /// `action NAME(a, b = 1):`
    pub header_params: Option<Vec<Param>>,
    /// `inputs: [a, b = 1]` as the first body line, with the span of that line.
    pub inputs_params: Option<(Vec<Param>, Span)>,
    pub body: Block,
    pub span: Span,
}

impl Action {
    /// The parameters, from whichever form declared them (header first).
    pub fn params(&self) -> &[Param] {
        match (&self.header_params, &self.inputs_params) {
            (Some(p), _) => p,
            (None, Some((p, _))) => p,
            (None, None) => &[],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Name,
    pub default: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Workflow {
    pub name: Option<Name>,
    pub keyword_span: Span,
    /// Every `key: value` line, `steps:` included.
    pub entries: Vec<MapEntry>,
    pub span: Span,
}

impl Workflow {
    /// The `steps:` list items.
    pub fn steps(&self) -> &[ListItem] {
        self.entries
            .iter()
            .find(|e| e.key == "steps")
            .and_then(|e| match &e.value {
                MapValue::List(items) => Some(items.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TypeHint {
    pub name: String,
    pub args: Vec<TypeHint>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `let x [: T] = e`
    Let {
        name: Name,
        ty: Option<TypeHint>,
        value: Expr,
    },
    /// 1.1 `x: e` / `x: T = e`: declare if new in this scope, else assign.
    Declare {
        name: Name,
        ty: Option<TypeHint>,
        value: Expr,
    },
    /// `target = e` where target is a name, index or field.
    Assign {
        target: Expr,
        value: Expr,
    },
    /// `memory: f(args)`
    Memory {
        call: Expr,
    },
    Expr(Expr),
    If {
        branches: Vec<(Expr, Block)>,
        else_block: Option<Block>,
    },
    For {
        var: Name,
        iter: Expr,
        body: Block,
    },
    While {
        cond: Expr,
        body: Block,
    },
    Break,
    Continue,
    Return(Option<Expr>),
    Emit {
        name: Name,
        payload: Option<Expr>,
    },
    Trigger(Expr),
    Sleep(Expr),
    Parallel(Block),
    Await(Vec<Expr>),
    Transaction(Block),
    Assert {
        cond: Expr,
        message: Option<Expr>,
    },
    /// `- expr` line: a step of a `transaction:` block.
    Item(Expr),
    /// A statement that failed to parse (already reported).
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::NotIn => "not in",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// `Some` for a keyword argument `name=value`.
    pub name: Option<Name>,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MapKey {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Milliseconds.
    Duration(f64),
    List(Vec<Expr>),
    Map(Vec<(MapKey, Expr)>),
    /// A variable, action, function or module name (`policy`, `workflow`, `memory` included).
    Name(String),
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    Member {
        target: Box<Expr>,
        name: Name,
    },
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
    },
    /// `a[x, y]`: only meaningful as a type hint (`Map[str, int]`).
    MultiIndex {
        target: Box<Expr>,
        indices: Vec<Expr>,
    },
    /// An expression that failed to parse (already reported).
    Error,
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }

    pub fn is_call(&self) -> bool {
        matches!(self.kind, ExprKind::Call { .. })
    }

    /// `a.b.c` as a dotted path, if the expression is one.
    pub fn dotted_path(&self) -> Option<Vec<&str>> {
        match &self.kind {
            ExprKind::Name(n) => Some(vec![n.as_str()]),
            ExprKind::Member { target, name } => {
                let mut p = target.dotted_path()?;
                p.push(&name.text);
                Some(p)
            }
            _ => None,
        }
    }
}
