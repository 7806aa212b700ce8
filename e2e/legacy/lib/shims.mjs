// What the legacy SDK (`sinch-rtc` 1.4.12, its Node build `lib/sinch.node.min.js`) needs from Node before it can
// run at all. The SDK is used as published, never patched: each shim below changes Node (or wrtc), not the SDK,
// and says which line of the SDK or of its dependencies it is for. Import this module before requiring the SDK.
import http from "node:http";
import { EventEmitter } from "node:events";

/**
 * PubNub 3.16.5 (the SDK's realtime transport), `node.js/lib/xdr.js`, decides at load time whether Node's own
 * agents keep connections alive with `'EventEmitter' in http.Agent.super_`. `super_` was set by `util.inherits`
 * in old Node; since http.Agent became a class it is undefined and that `in` throws a TypeError as soon as the SDK
 * is required. `EventEmitter` (which has an `EventEmitter` property) makes the test true, so PubNub takes Node's
 * built-in keep-alive `https.Agent`, which also trusts the test CA given in NODE_EXTRA_CA_CERTS.
 */
function agentSuper() {
  if (http.Agent.super_ === undefined) http.Agent.super_ = EventEmitter;
}

/**
 * The SDK declares its own module-level `navigator = navigator || {mediaDevices: {getUserMedia, userAgent: ""}}`,
 * which always takes the fallback in Node (the `var` shadows any global) and misplaces `userAgent` inside
 * `mediaDevices`. `new SinchClient()` then reads `navigator.userAgent.indexOf("Firefox")` and
 * `navigator.vendor.indexOf(...)` and throws. A global `navigator` cannot reach that object, so the two names are
 * given to every object, non-enumerable (invisible to `for...in` and `JSON.stringify`), as the empty strings a
 * browser without a user agent would give. This is why each legacy client runs in a process of its own.
 */
function navigatorStrings() {
  for (const name of ["userAgent", "vendor"]) {
    if (!(name in Object.prototype)) {
      Object.defineProperty(Object.prototype, name, { value: "", writable: true, configurable: true, enumerable: false });
    }
  }
}

/**
 * Calls only (the SDK requires `wrtc` in any case, so it is installed for messaging too): the SDK's Node build
 * falls back to `require("wrtc")` for RTCPeerConnection, and `@roamhq/wrtc` (aliased as `wrtc`) follows the
 * current WebRTC API where the SDK uses two older browser features.
 * - `pc.addStream(stream)` (removed from the standard): the SDK adds the outgoing stream with it; done here with
 *   `addTrack` for each track.
 * - `event.currentTarget`: the SDK's `oniceconnectionstatechange` reads `e.currentTarget.iceConnectionState`, and
 *   wrtc's events carry only `target`; every event dispatched by a peer connection gets `currentTarget` = it.
 * Also: a process that had a wrtc track crashes (SIGSEGV) if it ends by itself; end it with process.exit.
 */
export function installCallShims(wrtc) {
  const proto = wrtc.RTCPeerConnection.prototype;
  if (typeof proto.addStream !== "function") {
    proto.addStream = function addStream(stream) {
      for (const track of stream.getTracks()) this.addTrack(track, stream);
    };
  }
  const dispatch = proto.dispatchEvent;
  if (!dispatch.legacyShim) {
    const withCurrentTarget = function dispatchEvent(event) {
      if (event && typeof event === "object" && !event.currentTarget) event.currentTarget = this;
      return dispatch.call(this, event);
    };
    withCurrentTarget.legacyShim = true;
    proto.dispatchEvent = withCurrentTarget;
  }
}

/** The shims the SDK needs to load and start; call before `require("sinch-rtc")`. */
export function installShims() {
  agentSuper();
  navigatorStrings();
}
