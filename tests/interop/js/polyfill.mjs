// Node 20 compatibility shim for the js-libp2p 2.x dependency tree.
//
// `it-queue` (pulled in by mortice <- @libp2p/peer-store) calls `Promise.withResolvers`, which only
// exists from Node 22. Without it libp2p crashes while starting. This module must be imported before
// any libp2p module: ES modules are evaluated in import order, and this one has no dependencies.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => { resolve = res; reject = rej })
      return { promise, resolve, reject }
    }
  })
}
