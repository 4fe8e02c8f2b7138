// A restricted unpickler: the opcodes of protocols 2 to 5 that torch.save
// emits for dicts, lists, tuples, numbers, strings and tensors, and only the
// globals given by the caller. Nothing pickled is ever executed: a global
// outside the allow-list, or an opcode outside this set, is refused.

/** A callable a pickle may name: `module.name` -> what REDUCE does with its arguments. */
export type PickleGlobals = Record<string, (args: unknown[]) => unknown>;

/** A global named by the pickle but not called: kept as its dotted name. */
export class PickleGlobal {
  constructor(readonly name: string) {}
}

/** A Python tuple (kept apart from lists only where the caller cares). */
export type PickleTuple = unknown[];

const MARK = Symbol("mark");

/**
 * Unpickles `bytes`. `globals` lists the callables allowed through REDUCE,
 * `names` the globals allowed as plain values (storage types);
 * `persistent` resolves BINPERSID ids. `what` names the file in errors.
 */
export function unpickle(
  bytes: Uint8Array,
  what: string,
  globals: PickleGlobals,
  names: ReadonlySet<string>,
  persistent: (pid: unknown) => unknown,
): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8");
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let at = 0;
  const bad = (why: string): never => {
    throw new SyntaxError(`${what}: ${why}`);
  };
  const need = (n: number) => {
    if (at + n > bytes.length) bad("the pickle is truncated");
  };
  const u8 = () => (need(1), bytes[at++]);
  const u16 = () => (need(2), at += 2, view.getUint16(at - 2, true));
  const u32 = () => (need(4), at += 4, view.getUint32(at - 4, true));
  const take = (n: number) => (need(n), at += n, bytes.subarray(at - n, at));
  const line = () => {
    const end = bytes.indexOf(0x0a, at);
    if (end < 0) bad("the pickle is truncated");
    const s = utf8.decode(bytes.subarray(at, end));
    at = end + 1;
    return s;
  };
  const pop = () =>
    stack.length === 0 ? bad("the pickle stack is empty") : stack.pop();
  const popMark = (): unknown[] => {
    const m = stack.lastIndexOf(MARK);
    if (m < 0) bad("the pickle has no MARK");
    const items = stack.splice(m);
    items.shift();
    return items;
  };
  const top = () =>
    stack.length === 0
      ? bad("the pickle stack is empty")
      : stack[stack.length - 1];
  const global = (module: string, name: string): unknown => {
    const full = `${module}.${name}`;
    if (Object.hasOwn(globals, full)) return globals[full];
    if (names.has(full)) return new PickleGlobal(full);
    return bad(
      `the pickle names the global ${full}, which an expert-load file never holds: refused, nothing executed`,
    );
  };
  const setItems = (dict: unknown, items: unknown[]) => {
    if (!(dict instanceof Map)) bad("SETITEMS on a value that is not a dict");
    for (let i = 0; i + 1 < items.length; i += 2) {
      (dict as Map<unknown, unknown>).set(items[i], items[i + 1]);
    }
  };
  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(view.getInt32(at, true));
        at += 4;
        break;
      case 0x8a: { // LONG1
        const b = take(u8());
        let v = 0n;
        for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (b.length > 0 && b[b.length - 1] & 0x80) {
          v -= 1n << BigInt(8 * b.length);
        }
        if (
          v > BigInt(Number.MAX_SAFE_INTEGER) ||
          v < -BigInt(Number.MAX_SAFE_INTEGER)
        ) {
          bad(`the pickle holds the integer ${v}, beyond 2^53`);
        }
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(at, false));
        at += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8.decode(take(u8())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(utf8.decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(utf8.decode(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        const key = op === 0x68 ? u8() : u32();
        if (!memo.has(key)) {
          bad(`the pickle refers to memo ${key}, never stored`);
        }
        stack.push(memo.get(key));
        break;
      }
      case 0x63: { // GLOBAL
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== "string" || typeof name !== "string") {
          bad("STACK_GLOBAL without two strings");
        }
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: { // DICT
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) bad("APPEND on a value that is not a list");
        (list as unknown[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) bad("APPENDS on a value that is not a list");
        (list as unknown[]).push(...items);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop(), k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x52: { // REDUCE
        const args = pop(), fn = pop();
        if (typeof fn !== "function" || !Array.isArray(args)) {
          bad("the pickle calls something that is not an allowed function");
        }
        stack.push((fn as (a: unknown[]) => unknown)(args as unknown[]));
        break;
      }
      default:
        bad(
          `the pickle uses opcode 0x${
            op.toString(16).padStart(2, "0")
          } at byte ${at - 1}, which an expert-load file never holds: refused`,
        );
    }
  }
}
