#!/usr/bin/env node
// An independent js-libp2p peer configured like op-node's block gossip, driven over stdin/stdout.
//
// Purpose: interop evidence for op-baton. This peer shares no code with the Python node: transport
// (TCP + noise + yamux/mplex + identify), gossipsub (ChainSafe js-libp2p-gossipsub, StrictNoSign,
// op-node's topic-bound message id, op-node router parameters) and a topic validator doing the basic
// op-node checks (snappy decodes, size bounds, signature recovers to the expected unsafe-block signer,
// SSZ extraData offset matches the topic version). Invalid blocks are REJECTed here too, so this peer
// never forwards them.
//
// Modes
//   node peer.mjs --chain-id N [--signer 0xADDR] [--listen MA] [--key HEX] [--muxer yamux|mplex|both]
//       Prints {"event":"ready","peerId":…,"addrs":[…]} and then reads one JSON command per stdin line:
//         {"cmd":"dial","addr":MA}            → result {peerId}
//         {"cmd":"publish","topic":T,"data":"0x…"}  (data = snappy-compressed signed gossip bytes)
//                                             → result {msgId, recipients, publishedAt}
//         {"cmd":"resend","topic":T,"data":"0x…"}   (raw re-send to subscribed peers, bypassing our seen cache)
//         {"cmd":"peers"}                     → result {peers:[{peerId, addrs, score, protocols, topics, mesh}]}
//         {"cmd":"stats"}                     → result {received, delivered, duplicates, validation, rejects, …}
//         {"cmd":"quit"}                      → result, then exit 0
//       Any command may carry "id"; the result echoes it. Events (one JSON object per stdout line):
//         ready, result, message {topic,msgId,data,from,receivedAt,signer,blockNumber,blockHash,…},
//         reject {stage:"pubsub"|"validator", reason, error, topic, from, msgId},
//         peer:connect / peer:disconnect, graft / prune, error.
//   node peer.mjs --selftest [--vectors message_ids.json]
//       Checks the message-id function and signing/recovery against vectors, prints {"event":"selftest",…}.
//   node peer.mjs --bench [--count 100] [--size 102400] [--rate 10] [--chain-id 901]
//       js↔js one-hop latency: this process is the publisher, a child `peer.mjs` is the receiver.
//       Prints one JSON line {"event":"bench", p50_ms, p99_ms, …}.
//
// Timestamps (receivedAt, publishedAt) are wall-clock milliseconds with sub-ms precision
// (performance.timeOrigin + performance.now()), comparable with Python's time.time() * 1000.

import './polyfill.mjs'

import { spawn } from 'node:child_process'
import { readFileSync, existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'

import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, privateKeyFromRaw } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { mplex } from '@libp2p/mplex'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

import {
  MAX_GOSSIP_SIZE, MIN_GOSSIP_SIZE, SnappyError, blockTopics, buildV4Block, fromHex, opMessageId,
  parseBlockMessage, recoverSigner, secp, signBlock, signingHash, snappyDecode, toHex, topicVersion,
  addressOfPrivateKey, tryDecode, snappyCompress
} from './oplib.mjs'

const now = () => performance.timeOrigin + performance.now()
const emit = (obj) => { process.stdout.write(JSON.stringify(obj) + '\n') }
const log = (...args) => { process.stderr.write(`[peer.mjs ${process.pid}] ${args.join(' ')}\n`) }

// ------------------------------------------------------------------------------------------------
// op-node gossipsub configuration (p2p.md §4.3/§4.4)

const HEARTBEAT_MS = 500
const SLOT_MS = 2000 // 2 s blocks: decay interval = slot
const EPOCH_MS = 6 * SLOT_MS
const scoreDecay = (decayMs) => 0.01 ** (1 / (decayMs / SLOT_MS)) // op-node ScoreDecay

function gossipsubOptions () {
  return {
    globalSignaturePolicy: 'StrictNoSign', // no from/seqno/signature/key on the wire; reject them inbound
    msgIdFn: (msg) => opMessageId(msg.topic, msg.data, decodedCache.get(msg.data)),
    msgIdToStrFn: (id) => toHex(id),
    D: 8,
    Dlo: 6,
    Dhi: 12,
    Dlazy: 6,
    Dscore: 4,
    Dout: 2,
    heartbeatInterval: HEARTBEAT_MS,
    fanoutTTL: 24_000,
    mcacheLength: 12,
    mcacheGossip: 3,
    seenTTL: 130 * HEARTBEAT_MS, // 65 s
    floodPublish: false, // op-node default (--p2p.gossip.mesh.floodpublish=false)
    doPX: false,
    emitSelf: false,
    allowPublishToZeroTopicPeers: true,
    maxInboundDataLength: MAX_GOSSIP_SIZE, // op-node WithMaxMessageSize(10 MiB)
    // op-node "light" peer scoring: no topic params, IP colocation + behaviour penalty only.
    scoreParams: {
      topics: {},
      topicScoreCap: 0,
      appSpecificScore: () => 0,
      appSpecificWeight: 1,
      IPColocationFactorWeight: -35,
      IPColocationFactorThreshold: 10,
      behaviourPenaltyWeight: -16,
      behaviourPenaltyThreshold: 6,
      behaviourPenaltyDecay: scoreDecay(10 * EPOCH_MS),
      decayInterval: SLOT_MS,
      decayToZero: 0.01,
      retainScore: 100 * EPOCH_MS
    },
    scoreThresholds: {
      gossipThreshold: -10,
      publishThreshold: -40,
      graylistThreshold: -40,
      acceptPXThreshold: 20,
      opportunisticGraftThreshold: 0.05
    }
  }
}

// msgIdFn and the topic validator both need the decompressed data; decode once per message object.
const decodedCache = new WeakMap()

// ------------------------------------------------------------------------------------------------
// the node

async function createNode ({ listen, keyHex, muxer }) {
  const privateKey = keyHex != null
    ? privateKeyFromRaw(fromHex(keyHex)) // 32-byte secp256k1 scalar
    : await generateKeyPair('secp256k1') // op-node identities are secp256k1
  const muxers = { yamux: [yamux()], mplex: [mplex()], both: [yamux(), mplex()] }[muxer]
  if (muxers == null) throw new Error(`unknown --muxer ${muxer}`)
  return createLibp2p({
    privateKey,
    addresses: { listen: [listen] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: muxers,
    services: {
      identify: identify(),
      pubsub: gossipsub(gossipsubOptions())
    }
  })
}

/**
 * Wire the validator, the event reporting and the counters onto a started libp2p node.
 * `onMessage(evt)` receives every delivered message event (also printed when `print` is true).
 */
function instrument (node, { chainId, signer, print = true, onMessage = null }) {
  const gs = node.services.pubsub
  const out = (obj) => { if (print) emit(obj) }
  const stats = {
    received: {}, // topic -> delivered (valid) messages
    delivered: 0,
    duplicates: {}, // propagation peer -> duplicate messages seen
    validation: { accept: 0, reject: 0, ignore: 0 },
    rejects: [], // every invalid message (pubsub-level or validator), newest last (bounded)
    published: 0,
    publishErrors: 0,
    errors: []
  }
  const validated = new WeakMap() // msg -> info from the validator, for the message event
  const recordReject = (ev) => {
    stats.rejects.push(ev)
    if (stats.rejects.length > 1000) stats.rejects.shift()
    out({ event: 'reject', ...ev })
  }

  // Topic validator: op-node's first checks (p2p.md §5.1 steps 1–4, 6, 7-lite).
  const validator = (from, msg) => {
    const started = now()
    const version = topicVersion(msg.topic, chainId)
    const result = (acceptance, reason) => {
      stats.validation[acceptance] += 1
      if (acceptance !== 'accept') {
        recordReject({
          stage: 'validator',
          reason,
          result: acceptance,
          topic: msg.topic,
          from: from.toString(),
          msgId: toHex(opMessageId(msg.topic, msg.data, decodedCache.get(msg.data)))
        })
      }
      return acceptance
    }
    if (version < 0) return result('reject', 'unknown_topic')
    let decoded = decodedCache.get(msg.data)
    if (decoded === undefined) decoded = tryDecode(msg.data)
    if (decoded == null) {
      // Distinguish the op-node reasons for the report.
      try { snappyDecode(msg.data, Number.MAX_SAFE_INTEGER) } catch (e) {
        return result('reject', e instanceof SnappyError ? 'snappy: ' + e.message : 'snappy')
      }
      return result('reject', 'snappy: decoded length > 10 MiB')
    }
    if (decoded.length < MIN_GOSSIP_SIZE) return result('reject', 'too_small')
    if (signer === '0x0000000000000000000000000000000000000000') return result('ignore', 'no_signer')
    const sig = decoded.subarray(0, 65)
    const recovered = recoverSigner(sig, signingHash(chainId, decoded.subarray(65)))
    if (recovered == null) return result('reject', 'bad_signature')
    if (signer != null && recovered !== signer) return result('reject', `wrong_signer ${recovered}`)
    let info
    try {
      info = parseBlockMessage(decoded, version)
    } catch (e) {
      return result('reject', `bad_block_encoding: ${e.message}`)
    }
    validated.set(msg, { ...info, signer: recovered, decodedSize: decoded.length, validateMs: now() - started })
    return result('accept')
  }
  for (const topic of blockTopics(chainId)) {
    gs.topicValidators.set(topic, validator)
    gs.subscribe(topic)
  }

  // Cache decompressed data for msgIdFn/validator (the msg object is created before msgIdFn runs).
  const origValidate = gs.validateReceivedMessage.bind(gs)
  gs.validateReceivedMessage = async (from, rpcMsg) => {
    if (rpcMsg.data != null && !decodedCache.has(rpcMsg.data)) decodedCache.set(rpcMsg.data, tryDecode(rpcMsg.data))
    const res = await origValidate(from, rpcMsg)
    if (res.code === 'duplicate') {
      const p = from.toString()
      stats.duplicates[p] = (stats.duplicates[p] ?? 0) + 1
    } else if (res.code === 'invalid' && res.reason !== 'reject' && res.reason !== 'ignore') {
      // Pubsub-level rejection before any validator ran (e.g. seqno_present / from_present under
      // StrictNoSign, transform failures, blacklisted peers): protocol-level errors.
      recordReject({
        stage: 'pubsub',
        reason: res.reason,
        error: res.error ?? null,
        topic: rpcMsg.topic,
        from: from.toString(),
        msgId: res.msgIdStr ?? null,
        hasFrom: rpcMsg.from != null && rpcMsg.from.length > 0,
        hasSeqno: rpcMsg.seqno != null && rpcMsg.seqno.length > 0,
        hasSignature: rpcMsg.signature != null && rpcMsg.signature.length > 0
      })
    }
    return res
  }

  gs.addEventListener('gossipsub:message', (evt) => {
    const { propagationSource, msgId, msg } = evt.detail
    const info = validated.get(msg) ?? {}
    stats.received[msg.topic] = (stats.received[msg.topic] ?? 0) + 1
    stats.delivered += 1
    const ev = {
      event: 'message',
      topic: msg.topic,
      msgId,
      data: toHex(msg.data),
      from: propagationSource.toString(),
      receivedAt: now(),
      signer: info.signer ?? null,
      blockNumber: info.blockNumber ?? null,
      blockHash: info.blockHash ?? null,
      timestamp: info.timestamp ?? null,
      size: msg.data.length,
      decodedSize: info.decodedSize ?? null,
      validateMs: info.validateMs ?? null // time spent in our topic validator (keccak dominates)
    }
    out(ev)
    if (onMessage != null) onMessage(ev)
  })
  gs.addEventListener('gossipsub:graft', (evt) => out({ event: 'graft', ...evt.detail }))
  gs.addEventListener('gossipsub:prune', (evt) => out({ event: 'prune', ...evt.detail }))
  node.addEventListener('peer:connect', (evt) => out({ event: 'peer:connect', peerId: evt.detail.toString() }))
  node.addEventListener('peer:disconnect', (evt) => out({ event: 'peer:disconnect', peerId: evt.detail.toString() }))

  return { gs, stats }
}

async function peersInfo (node, gs) {
  const result = []
  for (const peerId of node.getPeers()) {
    const id = peerId.toString()
    let protocols = []
    try { protocols = (await node.peerStore.get(peerId)).protocols } catch {}
    const topics = []
    for (const [topic, set] of gs.topics) if (set.has(id)) topics.push(topic)
    const mesh = []
    for (const [topic, set] of gs.mesh) if (set.has(id)) mesh.push(topic)
    result.push({
      peerId: id,
      addrs: node.getConnections(peerId).map((c) => c.remoteAddr.toString()),
      muxers: node.getConnections(peerId).map((c) => c.multiplexer ?? null),
      encryption: node.getConnections(peerId).map((c) => c.encryption ?? null),
      score: gs.getScore(id),
      protocols,
      topics,
      mesh
    })
  }
  return result
}

function scoreSnapshot (gs) {
  const scores = {}
  for (const id of gs.peers.keys()) scores[id] = gs.getScore(id)
  return scores
}

// ------------------------------------------------------------------------------------------------
// interactive mode

async function runInteractive (opts) {
  const node = await createNode(opts)
  const { gs, stats } = instrument(node, opts)
  await node.start()
  emit({
    event: 'ready',
    peerId: node.peerId.toString(),
    addrs: node.getMultiaddrs().map((a) => a.toString()),
    chainId: opts.chainId,
    signer: opts.signer ?? null,
    topics: blockTopics(opts.chainId)
  })

  let stopping = false
  const shutdown = async (code) => {
    if (stopping) return
    stopping = true
    try { await node.stop() } catch (e) { log('stop failed', e) }
    process.exit(code)
  }
  process.on('SIGTERM', () => { shutdown(0) })
  process.on('SIGINT', () => { shutdown(0) })

  const handlers = {
    async dial ({ addr }) {
      const conn = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) })
      return { peerId: conn.remotePeer.toString(), remoteAddr: conn.remoteAddr.toString() }
    },
    async publish ({ topic, data }) {
      const bytes = fromHex(data)
      const publishedAt = now()
      try {
        const res = await gs.publish(topic, bytes)
        stats.published += 1
        return {
          msgId: toHex(opMessageId(topic, bytes)),
          recipients: res.recipients.map((p) => p.toString()),
          publishedAt
        }
      } catch (e) {
        stats.publishErrors += 1
        throw e
      }
    },
    // Re-send raw bytes to every connected peer subscribed to `topic`, bypassing our own seen cache
    // (a peer that repeats a message, to exercise duplicate suppression on the other side). The RPC
    // message carries only topic + data, as StrictNoSign requires.
    async resend ({ topic, data }) {
      const bytes = fromHex(data)
      const sentTo = []
      for (const [id, set] of gs.topics) {
        if (id !== topic) continue
        for (const peer of set) {
          if (gs.sendRpc(peer, { subscriptions: [], messages: [{ topic, data: bytes }] })) sentTo.push(peer)
        }
      }
      return { msgId: toHex(opMessageId(topic, bytes)), recipients: sentTo, publishedAt: now() }
    },
    async peers () {
      return { peers: await peersInfo(node, gs) }
    },
    async stats () {
      const mesh = {}
      for (const [topic, set] of gs.mesh) mesh[topic] = [...set]
      return { ...stats, scores: scoreSnapshot(gs), scoreStats: gs.dumpPeerScoreStats(), mesh }
    },
    async quit () {
      setImmediate(() => { shutdown(0) })
      return {}
    }
  }

  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
  rl.on('line', async (line) => {
    if (line.trim() === '') return
    let cmd
    try {
      cmd = JSON.parse(line)
    } catch (e) {
      emit({ event: 'result', ok: false, error: `bad json: ${e.message}` })
      return
    }
    const handler = handlers[cmd.cmd]
    const base = { event: 'result', cmd: cmd.cmd, id: cmd.id ?? null }
    if (handler == null) {
      emit({ ...base, ok: false, error: `unknown cmd ${cmd.cmd}` })
      return
    }
    try {
      emit({ ...base, ok: true, ...(await handler(cmd)) })
    } catch (e) {
      stats.errors.push(`${cmd.cmd}: ${e.message}`)
      emit({ ...base, ok: false, error: e.message ?? String(e) })
    }
  })
  rl.on('close', () => { shutdown(0) }) // stdin closed: the controlling process is gone
}

// ------------------------------------------------------------------------------------------------
// self-test

// The op-node column of /work/shared/vectors/message_ids.json (inputs from kona's config.rs tests).
const EMBEDDED_VECTORS = [
  { topic: 'test', data: '0x0102030405', op_node_msg_id: '0xb6897dcba59347fedcd694cc0f5117093c9dc727' },
  { topic: 'test', data: '0x05100102030405', op_node_msg_id: '0xadbe547b27f41294a08a09210a5e8531e83cdc16' },
  { topic: '', data: '0x0102030405', op_node_msg_id: '0x8ad5796f4da8b448882ea292aa49f3c1552aaadb' },
  { topic: '', data: '0x05100102030405', op_node_msg_id: '0x718d3d399d9a47e2031be7c0e31d48e64c8ed045' }
]

function selftest (vectorsPath) {
  const checks = []
  const check = (name, ok, detail = '') => { checks.push({ name, ok, detail }) }
  let vectors = EMBEDDED_VECTORS
  let source = 'embedded'
  if (vectorsPath != null && existsSync(vectorsPath)) {
    vectors = JSON.parse(readFileSync(vectorsPath, 'utf8'))
    source = vectorsPath
  }
  for (const v of vectors) {
    const got = toHex(opMessageId(v.topic, fromHex(v.data)))
    check(`msgid topic=${JSON.stringify(v.topic)} data=${v.data}`, got === v.op_node_msg_id, got)
  }
  // Signing hash vector (op-alloy envelope.rs test_signature_message): signed bytes = 32 × 0x99.
  const sh = toHex(signingHash(10, new Uint8Array(32).fill(0x99)))
  check('signing hash vector', sh === '0x44a0e2b1aba1aae1771eddae1dcd2ad18a8cdac8891517153f03253e49d3f206', sh)
  // Sign / recover round trip, v ∈ {0,1}; v = 27 must not recover.
  const priv = secp.utils.randomPrivateKey()
  const signed = new Uint8Array(200).fill(7)
  const sig = signBlock(priv, 901, signed)
  const addr = toHex(addressOfPrivateKey(priv))
  check('sign/recover', recoverSigner(sig, signingHash(901, signed)) === addr)
  const sig27 = sig.slice(); sig27[64] += 27
  check('v=27 refused', recoverSigner(sig27, signingHash(901, signed)) === null)
  // Strict snappy: round trip, truncated stream rejected, header > 10 MiB rejected.
  const block = buildV4Block(priv, 901, 1, 1000)
  const dec = snappyDecode(block)
  check('snappy round trip + block parse', parseBlockMessage(dec, 3).blockNumber === 1)
  check('truncated snappy rejected', tryDecode(block.subarray(0, block.length - 1)) === null)
  const big = snappyCompress(new Uint8Array(16))
  big[0] = 0x81; // replace the 1-byte header (16) with a larger claimed length: output size mismatch
  check('length mismatch rejected', tryDecode(big) === null)
  check('zip-bomb header rejected', tryDecode(Uint8Array.of(0x80, 0x80, 0x80, 0x06, 0)) === null)
  const ok = checks.every((c) => c.ok)
  emit({ event: 'selftest', ok, vectors: source, checks })
  return ok
}

// ------------------------------------------------------------------------------------------------
// bench: js -> js one-hop latency

function percentile (sorted, p) {
  if (sorted.length === 0) return null
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[idx]
}

/** Spawn a receiver peer.mjs; resolves with {proc, ready, events (async line iterator)}. */
function spawnPeer (args) {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  const listeners = new Set()
  const rl = createInterface({ input: proc.stdout })
  rl.on('line', (line) => {
    let ev
    try { ev = JSON.parse(line) } catch { return }
    for (const l of listeners) l(ev)
  })
  const waitFor = (pred, timeoutMs) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { listeners.delete(l); reject(new Error('timeout waiting for child event')) }, timeoutMs)
    const l = (ev) => { if (pred(ev)) { clearTimeout(timer); listeners.delete(l); resolve(ev) } }
    listeners.add(l)
  })
  const send = (obj) => proc.stdin.write(JSON.stringify(obj) + '\n')
  return { proc, listeners, waitFor, send }
}

async function runBench ({ chainId, count, size, rate, muxer }) {
  const priv = secp.utils.randomPrivateKey()
  const signer = toHex(addressOfPrivateKey(priv))
  const child = spawnPeer(['--chain-id', String(chainId), '--signer', signer, '--muxer', muxer])
  const received = new Map() // msgId -> receivedAt
  const validateMs = new Map() // msgId -> time the receiver's validator took
  child.listeners.add((ev) => {
    if (ev.event !== 'message') return
    received.set(ev.msgId, ev.receivedAt)
    validateMs.set(ev.msgId, ev.validateMs ?? 0)
  })
  try {
    const ready = await child.waitFor((ev) => ev.event === 'ready', 20_000)
    const node = await createNode({ listen: '/ip4/127.0.0.1/tcp/0', keyHex: null, muxer })
    const { gs, stats } = instrument(node, { chainId, signer, print: false })
    await node.start()
    await node.dial(multiaddr(ready.addrs[0]))
    const topic = blockTopics(chainId)[3]
    // Wait until the receiver is in our mesh for the topic (a GRAFT after the first heartbeats).
    const meshDeadline = Date.now() + 15_000
    while (!(gs.mesh.get(topic)?.has(ready.peerId) ?? false)) {
      if (Date.now() > meshDeadline) throw new Error('receiver never joined the mesh')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    // Pre-build the blocks so signing/compression is not part of the measured latency.
    const blocks = []
    for (let i = 0; i < count; i++) blocks.push(buildV4Block(priv, chainId, i + 1, size))
    const sent = [] // [msgId, publishedAt]
    const intervalMs = 1000 / rate
    const start = now()
    for (let i = 0; i < count; i++) {
      const due = start + i * intervalMs
      const wait = due - now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      const publishedAt = now()
      await gs.publish(topic, blocks[i])
      sent.push([toHex(opMessageId(topic, blocks[i])), publishedAt])
    }
    // Allow stragglers.
    const drainDeadline = Date.now() + 5_000
    while (received.size < count && Date.now() < drainDeadline) await new Promise((resolve) => setTimeout(resolve, 50))
    const lat = []
    const transport = [] // latency minus the receiver's validation time
    const validation = []
    for (const [id, t0] of sent) {
      if (!received.has(id)) continue
      lat.push(received.get(id) - t0)
      validation.push(validateMs.get(id))
      transport.push(received.get(id) - t0 - validateMs.get(id))
    }
    for (const arr of [lat, transport, validation]) arr.sort((a, b) => a - b)
    const round = (x) => (x == null ? null : Math.round(x * 1000) / 1000)
    emit({
      event: 'bench',
      impl: 'js-libp2p',
      versions: { libp2p: '2.10.0', gossipsub: '14.1.2', node: process.version },
      muxer,
      count,
      size,
      compressedSize: blocks[0].length,
      rate,
      delivered: lat.length,
      lost: count - lat.length,
      p50_ms: round(percentile(lat, 50)),
      p90_ms: round(percentile(lat, 90)),
      p99_ms: round(percentile(lat, 99)),
      max_ms: round(lat[lat.length - 1]),
      mean_ms: round(lat.reduce((a, b) => a + b, 0) / (lat.length || 1)),
      // Part of the latency spent in the receiver's validator (pure-JS keccak of the payload
      // dominates): subtract for a transport-only figure.
      validate_p50_ms: round(percentile(validation, 50)),
      validate_p99_ms: round(percentile(validation, 99)),
      transport_p50_ms: round(percentile(transport, 50)),
      transport_p99_ms: round(percentile(transport, 99)),
      publishErrors: stats.publishErrors
    })
    child.send({ cmd: 'quit' })
    await node.stop()
  } finally {
    setTimeout(() => child.proc.kill('SIGKILL'), 2000).unref()
  }
}

// ------------------------------------------------------------------------------------------------
// main

async function main () {
  const { values } = parseArgs({
    options: {
      'chain-id': { type: 'string', default: '901' },
      signer: { type: 'string' },
      listen: { type: 'string', default: '/ip4/127.0.0.1/tcp/0' },
      key: { type: 'string' },
      muxer: { type: 'string', default: 'both' },
      selftest: { type: 'boolean', default: false },
      vectors: { type: 'string' },
      bench: { type: 'boolean', default: false },
      count: { type: 'string', default: '100' },
      size: { type: 'string', default: '102400' },
      rate: { type: 'string', default: '10' }
    },
    strict: true
  })
  const chainId = Number(values['chain-id'])
  if (!Number.isSafeInteger(chainId) || chainId < 0) throw new Error('--chain-id must be a non-negative integer')
  if (values.selftest) {
    process.exit(selftest(values.vectors) ? 0 : 1)
  }
  if (values.bench) {
    await runBench({
      chainId,
      count: Number(values.count),
      size: Number(values.size),
      rate: Number(values.rate),
      muxer: values.muxer
    })
    process.exit(0)
  }
  let signer = null
  if (values.signer != null) {
    signer = toHex(fromHex(values.signer))
    if (signer.length !== 42) throw new Error('--signer must be a 20-byte address')
  }
  await runInteractive({ chainId, signer, listen: values.listen, keyHex: values.key ?? null, muxer: values.muxer })
}

main().catch((e) => {
  emit({ event: 'error', error: e.stack ?? String(e) })
  log('fatal:', e.stack ?? e)
  process.exit(1)
})
