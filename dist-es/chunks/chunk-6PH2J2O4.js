// infra/release/hash.ts
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
var PIECE_SIZE = 1024 * 1024;
async function hashFile(path, pieceSize = PIECE_SIZE) {
  const sha1 = createHash("sha1");
  const sha256 = createHash("sha256");
  const pieces = [];
  let piece = createHash("sha256");
  let inPiece = 0;
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: pieceSize })) {
    const buf = chunk;
    sha1.update(buf);
    sha256.update(buf);
    size += buf.length;
    let off = 0;
    while (off < buf.length) {
      const take = Math.min(pieceSize - inPiece, buf.length - off);
      piece.update(buf.subarray(off, off + take));
      inPiece += take;
      off += take;
      if (inPiece === pieceSize) {
        pieces.push(piece.digest("hex"));
        piece = createHash("sha256");
        inPiece = 0;
      }
    }
  }
  if (inPiece > 0) pieces.push(piece.digest("hex"));
  const out = { size, sha1: sha1.digest("hex"), sha256: sha256.digest("hex") };
  if (pieces.length > 1) out.pieces = pieces;
  return out;
}
function sha256Hex(data) {
  return createHash("sha256").update(data).digest("hex");
}
function sha1Hex(data) {
  return createHash("sha1").update(data).digest("hex");
}

export {
  PIECE_SIZE,
  hashFile,
  sha256Hex,
  sha1Hex
};
