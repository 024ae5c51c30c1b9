// OP Stack block-gossip primitives, written independently of the Python implementation.
//
// Everything here follows the op-node behaviour described in docs/specs p2p.md §2–§4:
//   * gossip data = snappy_block(signature[65] ‖ signed_bytes), signed_bytes = [beaconRoot[32] ‖] SSZ payload
//   * signing hash = keccak256(0x00*32 ‖ chainId u256 BE ‖ keccak256(signed_bytes)), secp256k1 recoverable,
//     signature r ‖ s ‖ v with v ∈ {0, 1}
//   * message id = sha256(domain ‖ u64le(len(topic)) ‖ topic ‖ data')[:20], domain 01000000 with the
//     snappy-decoded data when it decodes (decoded length ≤ 10 MiB), else 00000000 with the raw data.
//
// The snappy *decoder* is our own strict port of go's `snappy.Decode` (golang/snappy decode_other.go):
// snappyjs does not check that the output is exactly the declared length, so a truncated stream would
// "decode" there while op-node rejects it. snappyjs is used for compression only.

import { sha256 } from '@noble/hashes/sha2'
import { keccak_256 as keccak256 } from '@noble/hashes/sha3'
import { hmac } from '@noble/hashes/hmac'
import * as secp from '@noble/secp256k1'
import SnappyJS from 'snappyjs'

// noble-secp256k1 v2 needs a synchronous HMAC for synchronous RFC 6979 signing.
secp.etc.hmacSha256Sync = (key, ...msgs) => hmac(sha256, key, secp.etc.concatBytes(...msgs))

export const MAX_GOSSIP_SIZE = 10 * (1 << 20)
export const MIN_GOSSIP_SIZE = 66
export const SIGNATURE_LENGTH = 65
const DOMAIN_VALID_SNAPPY = Uint8Array.of(1, 0, 0, 0)
const DOMAIN_INVALID_SNAPPY = Uint8Array.of(0, 0, 0, 0)
const textEncoder = new TextEncoder()

// SSZ fixed-part size of ExecutionPayload V1..V4 (index = topic version 0..3).
export const FIXED_SIZES = [508, 512, 528, 560]

// ------------------------------------------------------------------------------------------------
// hex helpers

export function toHex (bytes) {
  return '0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export function fromHex (text) {
  const body = text.startsWith('0x') || text.startsWith('0X') ? text.slice(2) : text
  if (body.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(body)) throw new Error(`invalid hex: ${text.slice(0, 20)}`)
  return new Uint8Array(Buffer.from(body, 'hex'))
}

// ------------------------------------------------------------------------------------------------
// snappy (block format)

export class SnappyError extends Error {}

/** go `snappy.DecodedLen`: uvarint header (≤ 10 bytes, value must fit in 32 bits) → [length, headerLen]. */
export function snappyDecodedLen (src) {
  let value = 0n
  let shift = 0n
  for (let i = 0; i < Math.min(src.length, 10); i++) {
    const b = src[i]
    if (b < 0x80) {
      if (i === 9 && b > 1) throw new SnappyError('snappy: corrupt input (varint overflow)')
      value |= BigInt(b) << shift
      if (value > 0xffffffffn) throw new SnappyError('snappy: decoded block is too large')
      return [Number(value), i + 1]
    }
    value |= BigInt(b & 0x7f) << shift
    shift += 7n
  }
  throw new SnappyError('snappy: corrupt input (truncated varint)')
}

/**
 * Strict snappy block decode (go semantics). Throws SnappyError when the header is corrupt, the
 * decoded length exceeds `maxLen`, any tag is malformed, or the output is not exactly the declared size.
 */
export function snappyDecode (src, maxLen = MAX_GOSSIP_SIZE) {
  const [dLen, hdr] = snappyDecodedLen(src)
  if (dLen > maxLen) throw new SnappyError(`snappy: decoded length ${dLen} > ${maxLen}`)
  const dst = new Uint8Array(dLen)
  let d = 0
  let s = hdr
  const corrupt = () => new SnappyError('snappy: corrupt input')
  while (s < src.length) {
    const tag = src[s]
    let length
    let offset
    switch (tag & 3) {
      case 0: { // literal
        let x = tag >>> 2
        if (x < 60) {
          s += 1
        } else {
          const n = x - 59 // 1..4 extra length bytes
          s += 1 + n
          if (s > src.length) throw corrupt()
          x = 0
          for (let k = 0; k < n; k++) x += src[s - n + k] * 2 ** (8 * k)
        }
        length = x + 1
        if (length > dst.length - d || length > src.length - s) throw corrupt()
        dst.set(src.subarray(s, s + length), d)
        d += length
        s += length
        continue
      }
      case 1: // copy, 1-byte offset
        s += 2
        if (s > src.length) throw corrupt()
        length = 4 + ((src[s - 2] >>> 2) & 0x7)
        offset = ((src[s - 2] & 0xe0) << 3) | src[s - 1]
        break
      case 2: // copy, 2-byte offset
        s += 3
        if (s > src.length) throw corrupt()
        length = 1 + (src[s - 3] >>> 2)
        offset = src[s - 2] | (src[s - 1] << 8)
        break
      default: // copy, 4-byte offset
        s += 5
        if (s > src.length) throw corrupt()
        length = 1 + (src[s - 5] >>> 2)
        offset = (src[s - 4] | (src[s - 3] << 8) | (src[s - 2] << 16)) + src[s - 1] * 2 ** 24
        break
    }
    if (offset <= 0 || d < offset || length > dst.length - d) throw corrupt()
    // Forward copy byte by byte: overlapping copies (offset < length) repeat the pattern.
    for (let end = d + length; d < end; d++) dst[d] = dst[d - offset]
  }
  if (d !== dLen) throw corrupt()
  return dst
}

export function snappyCompress (data) {
  return new Uint8Array(SnappyJS.compress(data))
}

// ------------------------------------------------------------------------------------------------
// message id (op-node, topic-bound)

function u64le (n) {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true)
  return out
}

/** Try to decode gossip data the way op-node's message-id function does; null when it does not decode. */
export function tryDecode (data) {
  try {
    return snappyDecode(data, MAX_GOSSIP_SIZE)
  } catch (e) {
    if (e instanceof SnappyError) return null
    throw e
  }
}

/** op-node message id; `decoded` may be passed to avoid decoding twice (undefined → decode here). */
export function opMessageId (topic, data, decoded = undefined) {
  const d = decoded === undefined ? tryDecode(data) : decoded
  const topicBytes = textEncoder.encode(topic)
  const h = sha256.create()
  h.update(d != null ? DOMAIN_VALID_SNAPPY : DOMAIN_INVALID_SNAPPY)
  h.update(u64le(topicBytes.length))
  h.update(topicBytes)
  h.update(d ?? data)
  return h.digest().subarray(0, 20)
}

// ------------------------------------------------------------------------------------------------
// topics

export function blockTopics (chainId) {
  return [0, 1, 2, 3].map((v) => `/optimism/${chainId}/${v}/blocks`)
}

/** Topic version (0..3) of a block topic for `chainId`, or -1. */
export function topicVersion (topic, chainId) {
  const m = /^\/optimism\/(\d+)\/([0-3])\/blocks$/.exec(topic)
  if (m == null || m[1] !== String(chainId)) return -1
  return Number(m[2])
}

// ------------------------------------------------------------------------------------------------
// signatures

function u256be (n) {
  const out = new Uint8Array(32)
  let v = BigInt(n)
  for (let i = 31; i >= 0 && v > 0n; i--) { out[i] = Number(v & 0xffn); v >>= 8n }
  return out
}

export function signingHash (chainId, signedBytes) {
  const msg = new Uint8Array(96)
  msg.set(u256be(chainId), 32)
  msg.set(keccak256(signedBytes), 64)
  return keccak256(msg)
}

export function addressOfPublicKey (uncompressedPub) {
  return keccak256(uncompressedPub.subarray(1)).subarray(12)
}

export function addressOfPrivateKey (priv) {
  return addressOfPublicKey(secp.getPublicKey(priv, false))
}

/** Recover the signer address (hex, lower case) of r‖s‖v over `digest`; null on any failure (v must be 0/1). */
export function recoverSigner (sig65, digest) {
  try {
    if (sig65.length !== SIGNATURE_LENGTH || sig65[64] > 1) return null
    const sig = secp.Signature.fromCompact(sig65.subarray(0, 64)).addRecoveryBit(sig65[64])
    const pub = sig.recoverPublicKey(digest).toRawBytes(false)
    return toHex(addressOfPublicKey(pub))
  } catch {
    return null
  }
}

/** Sign `signedBytes` for `chainId` (RFC 6979, low-s) → 65-byte r‖s‖v. */
export function signBlock (priv, chainId, signedBytes) {
  const sig = secp.sign(signingHash(chainId, signedBytes), priv)
  const out = new Uint8Array(65)
  out.set(sig.toCompactRawBytes(), 0)
  out[64] = sig.recovery
  return out
}

// ------------------------------------------------------------------------------------------------
// minimal payload inspection (enough for the "basic" checks; the full rules live in the Python node)

/**
 * Parse the decompressed gossip data of topic version `version`. Returns
 * {signature, signedBytes, blockNumber, timestamp, blockHash} or throws Error(reason).
 * Checks the SSZ fixed part is present and that the extraData offset equals the fixed size of the
 * topic's version (op-node `ErrBadExtraDataOffset`), which catches a payload sent on the wrong topic.
 */
export function parseBlockMessage (decoded, version) {
  const signature = decoded.subarray(0, SIGNATURE_LENGTH)
  const signedBytes = decoded.subarray(SIGNATURE_LENGTH)
  const payload = version >= 2 ? signedBytes.subarray(32) : signedBytes
  const fixed = FIXED_SIZES[version]
  if (payload.length < fixed) throw new Error('payload_too_short')
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  if (view.getUint32(436, true) !== fixed) throw new Error('bad_extra_data_offset')
  return {
    signature,
    signedBytes,
    blockNumber: Number(view.getBigUint64(404, true)),
    timestamp: Number(view.getBigUint64(428, true)),
    blockHash: toHex(payload.subarray(472, 504))
  }
}

/**
 * Build a signed V4 block message (used by the bench): one opaque transaction of `txSize` random
 * bytes, empty extraData and withdrawals. The block hash is random (the js validator does not
 * recompute it). Returns the snappy-compressed gossip data.
 */
export function buildV4Block (priv, chainId, blockNumber, txSize) {
  const fixed = FIXED_SIZES[3]
  const txArea = 4 + txSize
  const payload = new Uint8Array(fixed + txArea)
  const view = new DataView(payload.buffer)
  crypto.getRandomValues(payload.subarray(0, 32)) // parentHash
  view.setBigUint64(404, BigInt(blockNumber), true)
  view.setBigUint64(412, 30_000_000n, true) // gasLimit
  view.setBigUint64(428, BigInt(Math.floor(Date.now() / 1000)), true) // timestamp
  view.setUint32(436, fixed, true) // extraData offset (empty)
  crypto.getRandomValues(payload.subarray(472, 504)) // blockHash
  view.setUint32(504, fixed, true) // transactions offset
  view.setUint32(508, fixed + txArea, true) // withdrawals offset (empty list)
  view.setUint32(fixed, 4, true) // tx offset table: one entry
  for (let off = 0; off < txSize; off += 65536) {
    crypto.getRandomValues(payload.subarray(fixed + 4 + off, fixed + 4 + Math.min(txSize, off + 65536)))
  }
  const signed = new Uint8Array(32 + payload.length) // parentBeaconBlockRoot (zero) ‖ payload
  signed.set(payload, 32)
  const sig = signBlock(priv, chainId, signed)
  const msg = new Uint8Array(65 + signed.length)
  msg.set(sig, 0)
  msg.set(signed, 65)
  return snappyCompress(msg)
}

export { keccak256, sha256, secp }
