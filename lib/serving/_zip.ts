// A zip reader for torch.save files: the central directory names each
// entry, its local header gives where the data starts (torch pads it to 64
// bytes with an extra field). Entries are stored or deflated; ZIP64 sizes
// and offsets are read from the extra field when the 32-bit ones overflow.
import { inflateRawSync } from "node:zlib";

const END_OF_DIRECTORY = 0x06054b50;
const ZIP64_END_OF_DIRECTORY = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
const DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const ZIP64_EXTRA = 0x0001;
const STORED = 0;
const DEFLATED = 8;
const OVERFLOW32 = 0xffffffff;

/** The zip magic `PK\x03\x04` that starts a torch.save file. */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b &&
    bytes[2] === 0x03 && bytes[3] === 0x04;
}

function fail(what: string, why: string): never {
  throw new SyntaxError(`${what} is not a readable zip archive: ${why}`);
}

/**
 * Reads every entry of a zip archive into memory: name to bytes.
 * `what` names the file in error messages.
 */
export function readZip(
  bytes: Uint8Array,
  what: string,
): Map<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (
    let at = bytes.length - 22;
    at >= Math.max(0, bytes.length - 65557);
    at--
  ) {
    if (view.getUint32(at, true) === END_OF_DIRECTORY) {
      end = at;
      break;
    }
  }
  if (end < 0) fail(what, "no end-of-central-directory record");
  let count = view.getUint16(end + 10, true);
  let dirOffset = view.getUint32(end + 16, true);
  if (
    (count === 0xffff || dirOffset === OVERFLOW32) && end >= 20 &&
    view.getUint32(end - 20, true) === ZIP64_LOCATOR
  ) {
    const at = Number(view.getBigUint64(end - 12, true));
    if (
      at + 56 > bytes.length ||
      view.getUint32(at, true) !== ZIP64_END_OF_DIRECTORY
    ) {
      fail(what, "a broken ZIP64 end-of-central-directory record");
    }
    count = Number(view.getBigUint64(at + 32, true));
    dirOffset = Number(view.getBigUint64(at + 48, true));
  }
  const entries = new Map<string, Uint8Array>();
  let at = dirOffset;
  const latin = new TextDecoder("utf-8");
  for (let i = 0; i < count; i++) {
    if (
      at + 46 > bytes.length || view.getUint32(at, true) !== DIRECTORY_ENTRY
    ) {
      fail(what, `central directory entry ${i} is missing`);
    }
    const method = view.getUint16(at + 10, true);
    let packed = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    const nameLen = view.getUint16(at + 28, true);
    const extraLen = view.getUint16(at + 30, true);
    const commentLen = view.getUint16(at + 32, true);
    let local = view.getUint32(at + 42, true);
    const name = latin.decode(bytes.subarray(at + 46, at + 46 + nameLen));
    // ZIP64 extra: the overflowing fields, in the order size, packed, offset.
    for (
      let x = at + 46 + nameLen;
      x + 4 <= at + 46 + nameLen + extraLen;
      x += 4 + view.getUint16(x + 2, true)
    ) {
      if (view.getUint16(x, true) !== ZIP64_EXTRA) continue;
      let f = x + 4;
      if (size === OVERFLOW32) {
        size = Number(view.getBigUint64(f, true)), f += 8;
      }
      if (packed === OVERFLOW32) {
        packed = Number(view.getBigUint64(f, true)), f += 8;
      }
      if (local === OVERFLOW32) local = Number(view.getBigUint64(f, true));
    }
    if (
      local + 30 > bytes.length || view.getUint32(local, true) !== LOCAL_HEADER
    ) {
      fail(what, `the local header of ${JSON.stringify(name)} is missing`);
    }
    const start = local + 30 + view.getUint16(local + 26, true) +
      view.getUint16(local + 28, true);
    if (start + packed > bytes.length) {
      fail(what, `entry ${JSON.stringify(name)} is truncated`);
    }
    const data = bytes.subarray(start, start + packed);
    if (method === STORED) entries.set(name, data);
    else if (method === DEFLATED) {
      entries.set(name, new Uint8Array(inflateRawSync(data)));
    } else {
      fail(
        what,
        `entry ${JSON.stringify(name)} uses compression method ${method}`,
      );
    }
    if (entries.get(name)!.length !== size) {
      fail(what, `entry ${JSON.stringify(name)} has the wrong size`);
    }
    at += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}
