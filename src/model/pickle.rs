//! A small pickle machine: enough of Python's pickle protocols 2 to 5 to read what `torch.save`
//! writes (dicts, OrderedDicts, tuples, lists, numbers, strings, globals, persistent ids and
//! the `REDUCE`/`BUILD` calls that rebuild tensors). It executes nothing: a call is kept as a
//! [`Value::Call`] for the reader of the result to interpret. Every length and index is checked
//! against the input, so arbitrary bytes give an error, never a panic or a huge allocation.
//!
//! Each value on the stack carries its [`Size`]: its bytes, so that the copies a memo or `DUP`
//! makes are paid from a fixed budget ([`MAX_COPIED_BYTES`]; 468 bytes of memo GETs that double
//! a value at each level once reached 9 GB), and its nesting depth, bounded ([`MAX_DEPTH`]) so
//! that no value is deeper than the recursion that drops, clones or reads it can follow (a list
//! nested 150,000 deep overflowed the stack). The machine itself never recurses.

use std::collections::HashMap;

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in an i64 (kept as its little-endian two's complement bytes).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Dicts and OrderedDicts, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// `module.name`, as a `GLOBAL`/`STACK_GLOBAL` names it.
    Global {
        module: String,
        name: String,
    },
    /// `func(*args)`, from `REDUCE` or `NEWOBJ`, with the state a later `BUILD` gave it.
    Call {
        func: Box<Value>,
        args: Vec<Value>,
        state: Option<Box<Value>>,
    },
    /// A persistent id (torch's storages).
    Persistent(Box<Value>),
}

impl Value {
    pub fn is_global(&self, m: &str, n: &str) -> bool {
        matches!(self, Value::Global { module, name } if module == m && name == n)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("pickle, byte {offset}: {message}")]
pub struct PickleError {
    pub offset: usize,
    pub message: String,
}

/// Bounds that keep a hostile file from exhausting memory.
const MAX_STACK: usize = 1 << 20;
const MAX_MEMO: usize = 1 << 22;
/// The most bytes of values that memo GETs, PUTs and `DUP` may copy in one pickle: torch.save's
/// copies are a few small tuples per tensor; 256 MB is thousands of times what they need.
pub const MAX_COPIED_BYTES: u64 = 256 << 20;
/// The deepest a value may nest (torch.save's state dicts: under 10).
pub const MAX_DEPTH: u32 = 256;

/// What a value costs: its bytes (a node's own and its strings') and its nesting depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    bytes: u64,
    depth: u32,
}

impl Size {
    /// A value with no children; `payload` bytes of text or data.
    fn leaf(payload: usize) -> Size {
        Size {
            bytes: std::mem::size_of::<Value>() as u64 + payload as u64,
            depth: 1,
        }
    }

    /// A container of `children`.
    fn of<'a>(children: impl IntoIterator<Item = &'a Size>) -> Size {
        children
            .into_iter()
            .fold(Size::leaf(0), |s, c| s.with(*c, 1))
    }

    /// This value with `child` added `levels` below it.
    fn with(self, child: Size, levels: u32) -> Size {
        Size {
            bytes: self.bytes.saturating_add(child.bytes),
            depth: self.depth.max(child.depth.saturating_add(levels)),
        }
    }
}

enum Item {
    Value(Value, Size),
    Mark,
}

/// Reads one pickle from the start of `bytes`; returns it and the number of bytes it took.
pub fn load(bytes: &[u8]) -> Result<(Value, usize), PickleError> {
    load_within(bytes, MAX_COPIED_BYTES)
}

/// [`load`] with `budget` bytes of copies.
fn load_within(bytes: &[u8], budget: u64) -> Result<(Value, usize), PickleError> {
    Machine {
        bytes,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        copied: 0,
        budget,
    }
    .run()
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    memo: HashMap<u32, (Value, Size)>,
    /// Bytes copied by the memo and `DUP` so far, and the most they may be.
    copied: u64,
    budget: u64,
}

impl Machine<'_> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.pos,
            message: message.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.bytes.len() => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => self.err(format!("needs {n} more bytes, the file ends first")),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len64(&mut self) -> Result<usize, PickleError> {
        let n = self.u64()?;
        usize::try_from(n).or_else(|_| self.err(format!("length {n} too large")))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("unterminated text line");
        };
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> Result<String, PickleError> {
        let at = self.pos;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| PickleError {
            offset: at,
            message: "string is not UTF-8".into(),
        })
    }

    /// Pushes a value with no children (`payload` bytes of text or data).
    fn push(&mut self, v: Value) -> Result<(), PickleError> {
        let payload = match &v {
            Value::Str(s) => s.len(),
            Value::Bytes(b) | Value::BigInt(b) => b.len(),
            Value::Global { module, name } => module.len() + name.len(),
            _ => 0,
        };
        self.push_sized(v, Size::leaf(payload))
    }

    fn push_sized(&mut self, v: Value, size: Size) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return self.err("stack too deep");
        }
        if size.depth > MAX_DEPTH {
            return self.err(format!("values nested more than {MAX_DEPTH} deep"));
        }
        self.stack.push(Item::Value(v, size));
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        Ok(self.pop_sized()?.0)
    }

    fn pop_sized(&mut self) -> Result<(Value, Size), PickleError> {
        match self.stack.pop() {
            Some(Item::Value(v, s)) => Ok((v, s)),
            Some(Item::Mark) => self.err("unexpected mark"),
            None => self.err("stack underflow"),
        }
    }

    fn top(&mut self) -> Result<(&mut Value, &mut Size), PickleError> {
        let pos = self.pos;
        match self.stack.last_mut() {
            Some(Item::Value(v, s)) => Ok((v, s)),
            _ => Err(PickleError {
                offset: pos,
                message: "expected a value on the stack".into(),
            }),
        }
    }

    /// Makes the top value `levels` deeper for `child` added under it, within [`MAX_DEPTH`].
    fn grow_top(&mut self, child: Size, levels: u32) -> Result<(), PickleError> {
        let (_, size) = self.top()?;
        *size = size.with(child, levels);
        if size.depth > MAX_DEPTH {
            return self.err(format!("values nested more than {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    /// Pops everything above the topmost mark, and the mark.
    fn pop_mark(&mut self) -> Result<(Vec<Value>, Size), PickleError> {
        let Some(at) = self.stack.iter().rposition(|i| matches!(i, Item::Mark)) else {
            return self.err("no mark on the stack");
        };
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        let mut size = Size::leaf(0);
        let values = items
            .into_iter()
            .map(|i| match i {
                Item::Value(v, s) => {
                    size = size.with(s, 1);
                    v
                }
                Item::Mark => unreachable!("marks above the topmost mark"),
            })
            .collect();
        Ok((values, size))
    }

    /// A copy of `v` (of `size`), paid from [`MAX_COPIED_BYTES`].
    fn copy(&mut self, v: &Value, size: Size) -> Result<Value, PickleError> {
        self.copied = self.copied.saturating_add(size.bytes);
        if self.copied > self.budget {
            return self.err(format!(
                "memo and DUP copies exceed {} bytes (a value doubled at each level?)",
                self.budget
            ));
        }
        Ok(v.clone())
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        if self.memo.len() >= MAX_MEMO {
            return self.err("memo too large");
        }
        let (value, size) = self.pop_sized()?;
        let copy = self.copy(&value, size);
        self.stack.push(Item::Value(value, size));
        self.memo.insert(key, (copy?, size));
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        match self.memo.remove(&key) {
            Some((v, size)) => {
                let copy = self.copy(&v, size);
                self.memo.insert(key, (v, size));
                self.push_sized(copy?, size)
            }
            None => self.err(format!("memo key {key} was never stored")),
        }
    }

    /// Adds `items` (key, value, key, value...; `size` as [`Machine::pop_mark`] gives it) to the
    /// dict on top of the stack.
    fn set_items(&mut self, (items, size): (Vec<Value>, Size)) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err("odd number of items for a dict");
        }
        let mut it = items.into_iter();
        let pos = self.pos;
        let (target, _) = self.top()?;
        let mut levels = 0;
        let dict = match target {
            Value::Dict(d) => d,
            // An OrderedDict subclass rebuilt by REDUCE: its items go into a dict state.
            Value::Call { state, .. } => {
                levels = 1;
                let s = state.get_or_insert_with(|| Box::new(Value::Dict(Vec::new())));
                match s.as_mut() {
                    Value::Dict(d) => d,
                    _ => {
                        return Err(PickleError {
                            offset: pos,
                            message: "SETITEMS on an object with a non-dict state".into(),
                        })
                    }
                }
            }
            _ => {
                return Err(PickleError {
                    offset: pos,
                    message: "SETITEM(S) on something that is not a dict".into(),
                })
            }
        };
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            dict.push((k, v));
        }
        self.grow_top(size, levels)
    }

    /// Adds `items` (`size` as [`Machine::pop_mark`] gives it) to the list on top of the stack.
    fn append(&mut self, (items, size): (Vec<Value>, Size)) -> Result<(), PickleError> {
        match self.top()? {
            (Value::List(l), _) => l.extend(items),
            _ => return self.err("APPEND(S) on something that is not a list"),
        }
        self.grow_top(size, 0)
    }

    /// Pops one value as the single item of [`Machine::set_items`] or [`Machine::append`].
    fn pop_items(&mut self, n: usize) -> Result<(Vec<Value>, Size), PickleError> {
        let mut items = Vec::with_capacity(n);
        let mut sizes = Vec::with_capacity(n);
        for _ in 0..n {
            let (v, s) = self.pop_sized()?;
            items.push(v);
            sizes.push(s);
        }
        items.reverse();
        Ok((items, Size::of(&sizes)))
    }

    fn call(&mut self, func: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Tuple(args) = args else {
            return self.err("call arguments are not a tuple");
        };
        // OrderedDict() is a dict as far as we are concerned.
        if func.is_global("collections", "OrderedDict") && args.is_empty() {
            return Ok(Value::Dict(Vec::new()));
        }
        Ok(Value::Call {
            func: Box::new(func),
            args,
            state: None,
        })
    }

    fn run(mut self) -> Result<(Value, usize), PickleError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let p = self.u8()?;
                    if p > 5 {
                        return self.err(format!("pickle protocol {p} is not supported"));
                    }
                }
                0x95 => {
                    // FRAME: a length hint only.
                    self.u64()?;
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok((v, self.pos));
                }
                b'(' => {
                    if self.stack.len() >= MAX_STACK {
                        return self.err("stack too deep");
                    }
                    self.stack.push(Item::Mark);
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let (v, size) = self.pop_sized()?;
                    let copy = self.copy(&v, size);
                    self.stack.push(Item::Value(v, size));
                    self.push_sized(copy?, size)?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))?
                }
                0x8a | 0x8b => {
                    // LONG1, LONG4
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        let n = self.u32()? as i32;
                        if n < 0 {
                            return self.err("negative LONG4 length");
                        }
                        n as usize
                    };
                    let raw = self.take(n)?.to_vec();
                    self.push(long(&raw))?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    self.push(Value::Float(v))?
                }
                b'I' => {
                    // INT (protocol 0), also how protocol 0 writes booleans.
                    let line = self.line()?;
                    let v = match line.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => match s.parse() {
                            Ok(i) => Value::Int(i),
                            Err(_) => return self.err(format!("INT `{s}` does not parse")),
                        },
                    };
                    self.push(v)?
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.string(n)?;
                    self.push(Value::Str(s))?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.string(n)?;
                    self.push(Value::Str(s))?
                }
                0x8d => {
                    let n = self.len64()?;
                    let s = self.string(n)?;
                    self.push(Value::Str(s))?
                }
                b'T' | b'U' => {
                    // BINSTRING, SHORT_BINSTRING (Python 2 str): bytes read as latin-1-ish text.
                    let n = if op == b'T' {
                        self.u32()? as usize
                    } else {
                        self.u8()? as usize
                    };
                    let raw = self.take(n)?;
                    let s = String::from_utf8_lossy(raw).into_owned();
                    self.push(Value::Str(s))?
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.len64()?,
                    };
                    let raw = self.take(n)?.to_vec();
                    self.push(Value::Bytes(raw))?
                }
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b't' => {
                    let (items, size) = self.pop_mark()?;
                    self.push_sized(Value::Tuple(items), size)?
                }
                0x85..=0x87 => {
                    let (items, size) = self.pop_items((op - 0x84) as usize)?;
                    self.push_sized(Value::Tuple(items), size)?
                }
                b']' => self.push(Value::List(Vec::new()))?,
                b'l' => {
                    let (items, size) = self.pop_mark()?;
                    self.push_sized(Value::List(items), size)?
                }
                b'a' => {
                    let items = self.pop_items(1)?;
                    self.append(items)?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                b'}' => self.push(Value::Dict(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Dict(Vec::new()))?;
                    self.set_items(items)?
                }
                b's' => {
                    let items = self.pop_items(2)?;
                    self.set_items(items)?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?
                }
                0x8f => self.push(Value::List(Vec::new()))?, // EMPTY_SET, kept as a list
                0x90 => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                0x91 => {
                    let (items, size) = self.pop_mark()?;
                    self.push_sized(Value::List(items), size)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global { module, name })?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => {
                            self.push(Value::Global { module, name })?
                        }
                        _ => return self.err("STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' | 0x81 => {
                    let (args, a) = self.pop_sized()?;
                    let (func, f) = self.pop_sized()?;
                    let v = self.call(func, args)?;
                    self.push_sized(v, Size::of(&[a, f]))?
                }
                0x92 => {
                    // NEWOBJ_EX: cls, args, kwargs
                    let _kwargs = self.pop()?;
                    let (args, a) = self.pop_sized()?;
                    let (func, f) = self.pop_sized()?;
                    let v = self.call(func, args)?;
                    self.push_sized(v, Size::of(&[a, f]))?
                }
                b'b' => {
                    let (state, size) = self.pop_sized()?;
                    match self.top()? {
                        // An OrderedDict's state is its attributes (torch's `_metadata`).
                        (Value::Dict(_), _) => {}
                        (Value::Call { state: s, .. }, _) => *s = Some(Box::new(state)),
                        _ => return self.err("BUILD on a value that is not an object"),
                    }
                    self.grow_top(size, 1)?
                }
                b'Q' => {
                    let (pid, size) = self.pop_sized()?;
                    self.push_sized(Value::Persistent(Box::new(pid)), Size::of(&[size]))?
                }
                b'P' => {
                    let pid = self.line()?;
                    self.push(Value::Persistent(Box::new(Value::Str(pid))))?
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                _ => {
                    self.pos -= 1;
                    return self.err(format!("unsupported pickle opcode 0x{op:02x}"));
                }
            }
        }
    }
}

/// A little-endian two's complement integer of any length.
fn long(raw: &[u8]) -> Value {
    if raw.is_empty() {
        return Value::Int(0);
    }
    if raw.len() <= 8 {
        let negative = raw[raw.len() - 1] & 0x80 != 0;
        let mut buf = [if negative { 0xff } else { 0 }; 8];
        buf[..raw.len()].copy_from_slice(raw);
        return Value::Int(i64::from_le_bytes(buf));
    }
    Value::BigInt(raw.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_protocol_2_dict_with_memo_and_long() {
        // pickle.dumps({'a': (1, -2, 300, 2**40), 'b': [1.5, None, True]}, protocol=2)
        let bytes: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01(K\x01J\xfe\xff\xff\xffM,\x01\x8a\x06\x00\x00\x00\x00\x00\x01tq\x02X\x01\x00\x00\x00bq\x03]q\x04(G?\xf8\x00\x00\x00\x00\x00\x00N\x88eu.";
        let (v, used) = load(bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(
            v,
            Value::Dict(vec![
                (
                    Value::Str("a".into()),
                    Value::Tuple(vec![
                        Value::Int(1),
                        Value::Int(-2),
                        Value::Int(300),
                        Value::Int(1 << 40)
                    ])
                ),
                (
                    Value::Str("b".into()),
                    Value::List(vec![Value::Float(1.5), Value::None, Value::Bool(true)])
                ),
            ])
        );
    }

    #[test]
    fn ordered_dict_reduce_is_a_dict() {
        // pickle.dumps(collections.OrderedDict([('x', 1)]), protocol=2)
        let bytes: &[u8] =
            b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00xq\x02K\x01s.";
        let (v, _) = load(bytes).unwrap();
        assert_eq!(
            v,
            Value::Dict(vec![(Value::Str("x".into()), Value::Int(1))])
        );
    }

    #[test]
    fn truncated_and_garbage_input_are_errors() {
        let bytes: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01u.";
        for cut in 0..bytes.len() {
            assert!(load(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(load(b"\x80\x02X\xff\xff\xff\xff").is_err());
        assert!(load(b"\x80\x02h\x05.").is_err());
        assert!(load(b"\xff").is_err());
    }

    /// Bytes and depth of `v`, walked without recursion (as the reader of a result may not).
    fn measure(v: &Value) -> (u64, u32) {
        let mut stack = vec![(v, 1u32)];
        let (mut bytes, mut depth) = (0u64, 0u32);
        while let Some((v, d)) = stack.pop() {
            depth = depth.max(d);
            bytes += std::mem::size_of::<Value>() as u64;
            match v {
                Value::Str(s) => bytes += s.len() as u64,
                Value::Bytes(b) | Value::BigInt(b) => bytes += b.len() as u64,
                Value::Tuple(items) | Value::List(items) => {
                    stack.extend(items.iter().map(|c| (c, d + 1)))
                }
                Value::Dict(items) => {
                    stack.extend(items.iter().flat_map(|(k, v)| [(k, d + 1), (v, d + 1)]))
                }
                Value::Call { func, args, state } => {
                    stack.push((func, d + 1));
                    stack.extend(args.iter().map(|c| (c, d + 1)));
                    if let Some(s) = state {
                        stack.push((s, d + 1));
                    }
                }
                Value::Persistent(p) => stack.push((p, d + 1)),
                _ => {}
            }
        }
        (bytes, depth)
    }

    #[test]
    fn memo_gets_that_double_a_value_are_stopped_by_the_budget() {
        // A 1000-byte string, then 40 levels of (memo[i], memo[i]) -> memo[i + 1]: each level
        // doubles what a copy costs. 468 bytes of this once reached 9 GB.
        let mut p = b"\x80\x02X\xe8\x03\x00\x00".to_vec();
        p.extend([b'x'; 1000]);
        p.extend(b"q\x00");
        for i in 0..40u8 {
            p.extend([b'h', i, b'h', i, 0x86, b'q', i + 1]);
        }
        p.push(b'.');
        let err = load(&p).unwrap_err();
        assert!(err.message.contains("copies exceed"), "{err}");
        // Twelve levels (about 24 MB of copies) are within the budget and read whole.
        let mut q = p[..p.len() - 1 - 7 * 28].to_vec();
        q.push(b'.');
        let (v, _) = load(&q).unwrap();
        assert_eq!(measure(&v).1, 13);
    }

    #[test]
    fn nesting_past_the_depth_bound_is_refused_without_overflowing_the_stack() {
        let n = 150_000;
        let mut forms: Vec<(&str, Vec<u8>)> = Vec::new();
        // Lists: ] ] ] ... a a a
        let mut lists = b"\x80\x02".to_vec();
        lists.extend(std::iter::repeat_n(b']', n));
        lists.extend(std::iter::repeat_n(b'a', n - 1));
        forms.push(("lists", lists));
        // MARK tuples: ( ( ( ... t t t
        let mut tuples = b"\x80\x02".to_vec();
        tuples.extend(std::iter::repeat_n(b'(', n));
        tuples.extend(std::iter::repeat_n(b't', n));
        forms.push(("tuples", tuples));
        // Dicts: } K\x01 } K\x01 ... s s s
        let mut dicts = b"\x80\x02}".to_vec();
        for _ in 0..n {
            dicts.extend(b"K\x01}");
        }
        dicts.extend(std::iter::repeat_n(b's', n));
        forms.push(("dicts", dicts));
        // REDUCE: f(f(f(...))) with one-tuples.
        let mut calls = b"\x80\x02".to_vec();
        for _ in 0..n {
            calls.extend(b"c\nf\n");
        }
        calls.extend(b"N");
        for _ in 0..n {
            calls.extend([0x85, b'R']);
        }
        forms.push(("reduce", calls));
        for (name, mut bytes) in forms {
            bytes.push(b'.');
            let err = load(&bytes).unwrap_err();
            assert!(
                err.message.contains("nested more than 256"),
                "{name}: {err}"
            );
        }
    }

    proptest::proptest! {
        /// Whatever the opcodes (those that build, copy and nest), a pickle loads within the
        /// budget: its value is at most its input's worth of nodes plus the copies allowed,
        /// and no deeper than the bound.
        #[test]
        fn arbitrary_pickles_stay_within_memory_and_depth(
            ops in proptest::collection::vec(proptest::sample::select(vec![
                &b"]"[..], b"}", b"(", b"t", b"l", b"a", b"e", b"N", b"K\x07", b"q\x00",
                b"q\x01", b"h\x00", b"h\x01", b"2", b"\x85", b"\x86", b"\x87", b"s", b"u",
                b"0", b"X\x03\x00\x00\x00abc", b"c\nf\n", b"R", b"b", b"Q",
            ]), 0..400)
        ) {
            let mut bytes = b"\x80\x02".to_vec();
            for op in &ops {
                bytes.extend(*op);
            }
            bytes.push(b'.');
            let budget = 1 << 20;
            if let Ok((v, _)) = load_within(&bytes, budget) {
                let (size, depth) = measure(&v);
                let per_op = std::mem::size_of::<Value>() as u64 + 8;
                proptest::prop_assert!(size <= budget + per_op * bytes.len() as u64);
                proptest::prop_assert!(depth <= MAX_DEPTH);
            }
        }
    }
}
