var __create = Object.create;
var __defProp = Object.defineProperty;
var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __getProtoOf = Object.getPrototypeOf;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __commonJS = (cb, mod) => function __require() {
  try {
    return mod || (0, cb[__getOwnPropNames(cb)[0]])((mod = { exports: {} }).exports, mod), mod.exports;
  } catch (e) {
    throw mod = 0, e;
  }
};
var __copyProps = (to, from, except, desc) => {
  if (from && typeof from === "object" || typeof from === "function") {
    for (let key of __getOwnPropNames(from))
      if (!__hasOwnProp.call(to, key) && key !== except)
        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
  }
  return to;
};
var __toESM = (mod, isNodeMode, target) => (target = mod != null ? __create(__getProtoOf(mod)) : {}, __copyProps(
  // If the importer is in node compatibility mode or this is not an ESM
  // file that has been converted to a CommonJS file using a Babel-
  // compatible transform (i.e. "__esModule" has not been set), then set
  // "default" to the CommonJS "module.exports" for node compatibility.
  isNodeMode || !mod || !mod.__esModule ? __defProp(target, "default", { value: mod, enumerable: true }) : target,
  mod
));

// node_modules/spark-md5/spark-md5.js
var require_spark_md5 = __commonJS({
  "node_modules/spark-md5/spark-md5.js"(exports, module) {
    (function(factory) {
      if (typeof exports === "object") {
        module.exports = factory();
      } else if (typeof define === "function" && define.amd) {
        define(factory);
      } else {
        var glob;
        try {
          glob = window;
        } catch (e) {
          glob = self;
        }
        glob.SparkMD5 = factory();
      }
    })(function(undefined2) {
      "use strict";
      var add32 = function(a, b) {
        return a + b & 4294967295;
      }, hex_chr = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"];
      function cmn(q, a, b, x, s, t) {
        a = add32(add32(a, q), add32(x, t));
        return add32(a << s | a >>> 32 - s, b);
      }
      function md5cycle(x, k) {
        var a = x[0], b = x[1], c = x[2], d = x[3];
        a += (b & c | ~b & d) + k[0] - 680876936 | 0;
        a = (a << 7 | a >>> 25) + b | 0;
        d += (a & b | ~a & c) + k[1] - 389564586 | 0;
        d = (d << 12 | d >>> 20) + a | 0;
        c += (d & a | ~d & b) + k[2] + 606105819 | 0;
        c = (c << 17 | c >>> 15) + d | 0;
        b += (c & d | ~c & a) + k[3] - 1044525330 | 0;
        b = (b << 22 | b >>> 10) + c | 0;
        a += (b & c | ~b & d) + k[4] - 176418897 | 0;
        a = (a << 7 | a >>> 25) + b | 0;
        d += (a & b | ~a & c) + k[5] + 1200080426 | 0;
        d = (d << 12 | d >>> 20) + a | 0;
        c += (d & a | ~d & b) + k[6] - 1473231341 | 0;
        c = (c << 17 | c >>> 15) + d | 0;
        b += (c & d | ~c & a) + k[7] - 45705983 | 0;
        b = (b << 22 | b >>> 10) + c | 0;
        a += (b & c | ~b & d) + k[8] + 1770035416 | 0;
        a = (a << 7 | a >>> 25) + b | 0;
        d += (a & b | ~a & c) + k[9] - 1958414417 | 0;
        d = (d << 12 | d >>> 20) + a | 0;
        c += (d & a | ~d & b) + k[10] - 42063 | 0;
        c = (c << 17 | c >>> 15) + d | 0;
        b += (c & d | ~c & a) + k[11] - 1990404162 | 0;
        b = (b << 22 | b >>> 10) + c | 0;
        a += (b & c | ~b & d) + k[12] + 1804603682 | 0;
        a = (a << 7 | a >>> 25) + b | 0;
        d += (a & b | ~a & c) + k[13] - 40341101 | 0;
        d = (d << 12 | d >>> 20) + a | 0;
        c += (d & a | ~d & b) + k[14] - 1502002290 | 0;
        c = (c << 17 | c >>> 15) + d | 0;
        b += (c & d | ~c & a) + k[15] + 1236535329 | 0;
        b = (b << 22 | b >>> 10) + c | 0;
        a += (b & d | c & ~d) + k[1] - 165796510 | 0;
        a = (a << 5 | a >>> 27) + b | 0;
        d += (a & c | b & ~c) + k[6] - 1069501632 | 0;
        d = (d << 9 | d >>> 23) + a | 0;
        c += (d & b | a & ~b) + k[11] + 643717713 | 0;
        c = (c << 14 | c >>> 18) + d | 0;
        b += (c & a | d & ~a) + k[0] - 373897302 | 0;
        b = (b << 20 | b >>> 12) + c | 0;
        a += (b & d | c & ~d) + k[5] - 701558691 | 0;
        a = (a << 5 | a >>> 27) + b | 0;
        d += (a & c | b & ~c) + k[10] + 38016083 | 0;
        d = (d << 9 | d >>> 23) + a | 0;
        c += (d & b | a & ~b) + k[15] - 660478335 | 0;
        c = (c << 14 | c >>> 18) + d | 0;
        b += (c & a | d & ~a) + k[4] - 405537848 | 0;
        b = (b << 20 | b >>> 12) + c | 0;
        a += (b & d | c & ~d) + k[9] + 568446438 | 0;
        a = (a << 5 | a >>> 27) + b | 0;
        d += (a & c | b & ~c) + k[14] - 1019803690 | 0;
        d = (d << 9 | d >>> 23) + a | 0;
        c += (d & b | a & ~b) + k[3] - 187363961 | 0;
        c = (c << 14 | c >>> 18) + d | 0;
        b += (c & a | d & ~a) + k[8] + 1163531501 | 0;
        b = (b << 20 | b >>> 12) + c | 0;
        a += (b & d | c & ~d) + k[13] - 1444681467 | 0;
        a = (a << 5 | a >>> 27) + b | 0;
        d += (a & c | b & ~c) + k[2] - 51403784 | 0;
        d = (d << 9 | d >>> 23) + a | 0;
        c += (d & b | a & ~b) + k[7] + 1735328473 | 0;
        c = (c << 14 | c >>> 18) + d | 0;
        b += (c & a | d & ~a) + k[12] - 1926607734 | 0;
        b = (b << 20 | b >>> 12) + c | 0;
        a += (b ^ c ^ d) + k[5] - 378558 | 0;
        a = (a << 4 | a >>> 28) + b | 0;
        d += (a ^ b ^ c) + k[8] - 2022574463 | 0;
        d = (d << 11 | d >>> 21) + a | 0;
        c += (d ^ a ^ b) + k[11] + 1839030562 | 0;
        c = (c << 16 | c >>> 16) + d | 0;
        b += (c ^ d ^ a) + k[14] - 35309556 | 0;
        b = (b << 23 | b >>> 9) + c | 0;
        a += (b ^ c ^ d) + k[1] - 1530992060 | 0;
        a = (a << 4 | a >>> 28) + b | 0;
        d += (a ^ b ^ c) + k[4] + 1272893353 | 0;
        d = (d << 11 | d >>> 21) + a | 0;
        c += (d ^ a ^ b) + k[7] - 155497632 | 0;
        c = (c << 16 | c >>> 16) + d | 0;
        b += (c ^ d ^ a) + k[10] - 1094730640 | 0;
        b = (b << 23 | b >>> 9) + c | 0;
        a += (b ^ c ^ d) + k[13] + 681279174 | 0;
        a = (a << 4 | a >>> 28) + b | 0;
        d += (a ^ b ^ c) + k[0] - 358537222 | 0;
        d = (d << 11 | d >>> 21) + a | 0;
        c += (d ^ a ^ b) + k[3] - 722521979 | 0;
        c = (c << 16 | c >>> 16) + d | 0;
        b += (c ^ d ^ a) + k[6] + 76029189 | 0;
        b = (b << 23 | b >>> 9) + c | 0;
        a += (b ^ c ^ d) + k[9] - 640364487 | 0;
        a = (a << 4 | a >>> 28) + b | 0;
        d += (a ^ b ^ c) + k[12] - 421815835 | 0;
        d = (d << 11 | d >>> 21) + a | 0;
        c += (d ^ a ^ b) + k[15] + 530742520 | 0;
        c = (c << 16 | c >>> 16) + d | 0;
        b += (c ^ d ^ a) + k[2] - 995338651 | 0;
        b = (b << 23 | b >>> 9) + c | 0;
        a += (c ^ (b | ~d)) + k[0] - 198630844 | 0;
        a = (a << 6 | a >>> 26) + b | 0;
        d += (b ^ (a | ~c)) + k[7] + 1126891415 | 0;
        d = (d << 10 | d >>> 22) + a | 0;
        c += (a ^ (d | ~b)) + k[14] - 1416354905 | 0;
        c = (c << 15 | c >>> 17) + d | 0;
        b += (d ^ (c | ~a)) + k[5] - 57434055 | 0;
        b = (b << 21 | b >>> 11) + c | 0;
        a += (c ^ (b | ~d)) + k[12] + 1700485571 | 0;
        a = (a << 6 | a >>> 26) + b | 0;
        d += (b ^ (a | ~c)) + k[3] - 1894986606 | 0;
        d = (d << 10 | d >>> 22) + a | 0;
        c += (a ^ (d | ~b)) + k[10] - 1051523 | 0;
        c = (c << 15 | c >>> 17) + d | 0;
        b += (d ^ (c | ~a)) + k[1] - 2054922799 | 0;
        b = (b << 21 | b >>> 11) + c | 0;
        a += (c ^ (b | ~d)) + k[8] + 1873313359 | 0;
        a = (a << 6 | a >>> 26) + b | 0;
        d += (b ^ (a | ~c)) + k[15] - 30611744 | 0;
        d = (d << 10 | d >>> 22) + a | 0;
        c += (a ^ (d | ~b)) + k[6] - 1560198380 | 0;
        c = (c << 15 | c >>> 17) + d | 0;
        b += (d ^ (c | ~a)) + k[13] + 1309151649 | 0;
        b = (b << 21 | b >>> 11) + c | 0;
        a += (c ^ (b | ~d)) + k[4] - 145523070 | 0;
        a = (a << 6 | a >>> 26) + b | 0;
        d += (b ^ (a | ~c)) + k[11] - 1120210379 | 0;
        d = (d << 10 | d >>> 22) + a | 0;
        c += (a ^ (d | ~b)) + k[2] + 718787259 | 0;
        c = (c << 15 | c >>> 17) + d | 0;
        b += (d ^ (c | ~a)) + k[9] - 343485551 | 0;
        b = (b << 21 | b >>> 11) + c | 0;
        x[0] = a + x[0] | 0;
        x[1] = b + x[1] | 0;
        x[2] = c + x[2] | 0;
        x[3] = d + x[3] | 0;
      }
      function md5blk(s) {
        var md5blks = [], i;
        for (i = 0; i < 64; i += 4) {
          md5blks[i >> 2] = s.charCodeAt(i) + (s.charCodeAt(i + 1) << 8) + (s.charCodeAt(i + 2) << 16) + (s.charCodeAt(i + 3) << 24);
        }
        return md5blks;
      }
      function md5blk_array(a) {
        var md5blks = [], i;
        for (i = 0; i < 64; i += 4) {
          md5blks[i >> 2] = a[i] + (a[i + 1] << 8) + (a[i + 2] << 16) + (a[i + 3] << 24);
        }
        return md5blks;
      }
      function md51(s) {
        var n = s.length, state = [1732584193, -271733879, -1732584194, 271733878], i, length, tail, tmp, lo, hi;
        for (i = 64; i <= n; i += 64) {
          md5cycle(state, md5blk(s.substring(i - 64, i)));
        }
        s = s.substring(i - 64);
        length = s.length;
        tail = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for (i = 0; i < length; i += 1) {
          tail[i >> 2] |= s.charCodeAt(i) << (i % 4 << 3);
        }
        tail[i >> 2] |= 128 << (i % 4 << 3);
        if (i > 55) {
          md5cycle(state, tail);
          for (i = 0; i < 16; i += 1) {
            tail[i] = 0;
          }
        }
        tmp = n * 8;
        tmp = tmp.toString(16).match(/(.*?)(.{0,8})$/);
        lo = parseInt(tmp[2], 16);
        hi = parseInt(tmp[1], 16) || 0;
        tail[14] = lo;
        tail[15] = hi;
        md5cycle(state, tail);
        return state;
      }
      function md51_array(a) {
        var n = a.length, state = [1732584193, -271733879, -1732584194, 271733878], i, length, tail, tmp, lo, hi;
        for (i = 64; i <= n; i += 64) {
          md5cycle(state, md5blk_array(a.subarray(i - 64, i)));
        }
        a = i - 64 < n ? a.subarray(i - 64) : new Uint8Array(0);
        length = a.length;
        tail = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for (i = 0; i < length; i += 1) {
          tail[i >> 2] |= a[i] << (i % 4 << 3);
        }
        tail[i >> 2] |= 128 << (i % 4 << 3);
        if (i > 55) {
          md5cycle(state, tail);
          for (i = 0; i < 16; i += 1) {
            tail[i] = 0;
          }
        }
        tmp = n * 8;
        tmp = tmp.toString(16).match(/(.*?)(.{0,8})$/);
        lo = parseInt(tmp[2], 16);
        hi = parseInt(tmp[1], 16) || 0;
        tail[14] = lo;
        tail[15] = hi;
        md5cycle(state, tail);
        return state;
      }
      function rhex(n) {
        var s = "", j;
        for (j = 0; j < 4; j += 1) {
          s += hex_chr[n >> j * 8 + 4 & 15] + hex_chr[n >> j * 8 & 15];
        }
        return s;
      }
      function hex(x) {
        var i;
        for (i = 0; i < x.length; i += 1) {
          x[i] = rhex(x[i]);
        }
        return x.join("");
      }
      if (hex(md51("hello")) !== "5d41402abc4b2a76b9719d911017c592") {
        add32 = function(x, y) {
          var lsw = (x & 65535) + (y & 65535), msw = (x >> 16) + (y >> 16) + (lsw >> 16);
          return msw << 16 | lsw & 65535;
        };
      }
      if (typeof ArrayBuffer !== "undefined" && !ArrayBuffer.prototype.slice) {
        (function() {
          function clamp(val, length) {
            val = val | 0 || 0;
            if (val < 0) {
              return Math.max(val + length, 0);
            }
            return Math.min(val, length);
          }
          ArrayBuffer.prototype.slice = function(from, to) {
            var length = this.byteLength, begin = clamp(from, length), end = length, num, target, targetArray, sourceArray;
            if (to !== undefined2) {
              end = clamp(to, length);
            }
            if (begin > end) {
              return new ArrayBuffer(0);
            }
            num = end - begin;
            target = new ArrayBuffer(num);
            targetArray = new Uint8Array(target);
            sourceArray = new Uint8Array(this, begin, num);
            targetArray.set(sourceArray);
            return target;
          };
        })();
      }
      function toUtf8(str) {
        if (/[\u0080-\uFFFF]/.test(str)) {
          str = unescape(encodeURIComponent(str));
        }
        return str;
      }
      function utf8Str2ArrayBuffer(str, returnUInt8Array) {
        var length = str.length, buff = new ArrayBuffer(length), arr = new Uint8Array(buff), i;
        for (i = 0; i < length; i += 1) {
          arr[i] = str.charCodeAt(i);
        }
        return returnUInt8Array ? arr : buff;
      }
      function arrayBuffer2Utf8Str(buff) {
        return String.fromCharCode.apply(null, new Uint8Array(buff));
      }
      function concatenateArrayBuffers(first, second, returnUInt8Array) {
        var result = new Uint8Array(first.byteLength + second.byteLength);
        result.set(new Uint8Array(first));
        result.set(new Uint8Array(second), first.byteLength);
        return returnUInt8Array ? result : result.buffer;
      }
      function hexToBinaryString(hex2) {
        var bytes = [], length = hex2.length, x;
        for (x = 0; x < length - 1; x += 2) {
          bytes.push(parseInt(hex2.substr(x, 2), 16));
        }
        return String.fromCharCode.apply(String, bytes);
      }
      function SparkMD52() {
        this.reset();
      }
      SparkMD52.prototype.append = function(str) {
        this.appendBinary(toUtf8(str));
        return this;
      };
      SparkMD52.prototype.appendBinary = function(contents) {
        this._buff += contents;
        this._length += contents.length;
        var length = this._buff.length, i;
        for (i = 64; i <= length; i += 64) {
          md5cycle(this._hash, md5blk(this._buff.substring(i - 64, i)));
        }
        this._buff = this._buff.substring(i - 64);
        return this;
      };
      SparkMD52.prototype.end = function(raw) {
        var buff = this._buff, length = buff.length, i, tail = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], ret;
        for (i = 0; i < length; i += 1) {
          tail[i >> 2] |= buff.charCodeAt(i) << (i % 4 << 3);
        }
        this._finish(tail, length);
        ret = hex(this._hash);
        if (raw) {
          ret = hexToBinaryString(ret);
        }
        this.reset();
        return ret;
      };
      SparkMD52.prototype.reset = function() {
        this._buff = "";
        this._length = 0;
        this._hash = [1732584193, -271733879, -1732584194, 271733878];
        return this;
      };
      SparkMD52.prototype.getState = function() {
        return {
          buff: this._buff,
          length: this._length,
          hash: this._hash.slice()
        };
      };
      SparkMD52.prototype.setState = function(state) {
        this._buff = state.buff;
        this._length = state.length;
        this._hash = state.hash;
        return this;
      };
      SparkMD52.prototype.destroy = function() {
        delete this._hash;
        delete this._buff;
        delete this._length;
      };
      SparkMD52.prototype._finish = function(tail, length) {
        var i = length, tmp, lo, hi;
        tail[i >> 2] |= 128 << (i % 4 << 3);
        if (i > 55) {
          md5cycle(this._hash, tail);
          for (i = 0; i < 16; i += 1) {
            tail[i] = 0;
          }
        }
        tmp = this._length * 8;
        tmp = tmp.toString(16).match(/(.*?)(.{0,8})$/);
        lo = parseInt(tmp[2], 16);
        hi = parseInt(tmp[1], 16) || 0;
        tail[14] = lo;
        tail[15] = hi;
        md5cycle(this._hash, tail);
      };
      SparkMD52.hash = function(str, raw) {
        return SparkMD52.hashBinary(toUtf8(str), raw);
      };
      SparkMD52.hashBinary = function(content, raw) {
        var hash = md51(content), ret = hex(hash);
        return raw ? hexToBinaryString(ret) : ret;
      };
      SparkMD52.ArrayBuffer = function() {
        this.reset();
      };
      SparkMD52.ArrayBuffer.prototype.append = function(arr) {
        var buff = concatenateArrayBuffers(this._buff.buffer, arr, true), length = buff.length, i;
        this._length += arr.byteLength;
        for (i = 64; i <= length; i += 64) {
          md5cycle(this._hash, md5blk_array(buff.subarray(i - 64, i)));
        }
        this._buff = i - 64 < length ? new Uint8Array(buff.buffer.slice(i - 64)) : new Uint8Array(0);
        return this;
      };
      SparkMD52.ArrayBuffer.prototype.end = function(raw) {
        var buff = this._buff, length = buff.length, tail = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], i, ret;
        for (i = 0; i < length; i += 1) {
          tail[i >> 2] |= buff[i] << (i % 4 << 3);
        }
        this._finish(tail, length);
        ret = hex(this._hash);
        if (raw) {
          ret = hexToBinaryString(ret);
        }
        this.reset();
        return ret;
      };
      SparkMD52.ArrayBuffer.prototype.reset = function() {
        this._buff = new Uint8Array(0);
        this._length = 0;
        this._hash = [1732584193, -271733879, -1732584194, 271733878];
        return this;
      };
      SparkMD52.ArrayBuffer.prototype.getState = function() {
        var state = SparkMD52.prototype.getState.call(this);
        state.buff = arrayBuffer2Utf8Str(state.buff);
        return state;
      };
      SparkMD52.ArrayBuffer.prototype.setState = function(state) {
        state.buff = utf8Str2ArrayBuffer(state.buff, true);
        return SparkMD52.prototype.setState.call(this, state);
      };
      SparkMD52.ArrayBuffer.prototype.destroy = SparkMD52.prototype.destroy;
      SparkMD52.ArrayBuffer.prototype._finish = SparkMD52.prototype._finish;
      SparkMD52.ArrayBuffer.hash = function(arr, raw) {
        var hash = md51_array(new Uint8Array(arr)), ret = hex(hash);
        return raw ? hexToBinaryString(ret) : ret;
      };
      return SparkMD52;
    });
  }
});

// src/callbox.ts
var import_spark_md5 = __toESM(require_spark_md5(), 1);
var VERSION = "0.1.0";
var CallboxPromise = class _CallboxPromise extends Promise {
  // `then`, `catch` and `finally` already return a CallboxPromise at run time (the species is the subclass);
  // these signatures say so, so that `send(m).then(ok).fail(err)` type-checks as legacy code writes it.
  then(onFulfilled, onRejected) {
    return super.then(onFulfilled, onRejected);
  }
  catch(onRejected) {
    return super.catch(onRejected);
  }
  finally(onFinally) {
    return super.finally(onFinally);
  }
  /** Same as `.catch()`. */
  fail(onRejected) {
    return this.catch(onRejected);
  }
  static from(promise) {
    return new _CallboxPromise((resolve, reject) => {
      promise.then(resolve, reject);
    });
  }
};
var CallboxError = class extends Error {
  code;
  reason;
  retryable;
  response;
  /** Seconds to wait, for `locked_out` and `rate_limited`. */
  retryAfter;
  /** The server's clock when it refused, when it said. */
  serverTime;
  constructor(code, reason, message, retryable = false, response = null, retryAfter = null, serverTime = null) {
    super(message);
    this.name = "CallboxError";
    this.code = code;
    this.reason = reason;
    this.retryable = retryable;
    this.response = response;
    this.retryAfter = retryAfter;
    this.serverTime = serverTime;
  }
};
var LOCAL_CODES = {
  not_started: 40100,
  capability_not_granted: 40300,
  invalid_argument: 4e4,
  network_error: 0,
  malformed_response: 5e4
};
function localError(reason, message, retryable = false) {
  return new CallboxError(LOCAL_CODES[reason] ?? 0, reason, message, retryable);
}
function errorFromResponse(status, body, retryAfterHeader) {
  const b = body && typeof body === "object" ? body : {};
  const code = typeof b.errorCode === "number" ? b.errorCode : status * 100;
  const reason = typeof b.reason === "string" ? b.reason : reasonForStatus(status);
  const message = typeof b.message === "string" ? b.message : `Callbox answered HTTP ${status}`;
  const retryable = typeof b.retryable === "boolean" ? b.retryable : status === 429 || status >= 500;
  let retryAfter = typeof b.retryAfter === "number" ? b.retryAfter : null;
  if (retryAfter === null && retryAfterHeader) {
    const n = Number(retryAfterHeader);
    if (Number.isFinite(n)) retryAfter = n;
  }
  const serverTime = typeof b.serverTime === "string" ? b.serverTime : null;
  return new CallboxError(code, reason, message, retryable, { status, body }, retryAfter, serverTime);
}
function reasonForStatus(status) {
  switch (status) {
    case 400:
      return "malformed_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 429:
      return "rate_limited";
    case 503:
      return "service_unavailable";
    default:
      return status >= 500 ? "internal_error" : "http_error";
  }
}
function base64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
function bytesToBase64(bytes) {
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin);
}
function contentMd5(body) {
  if (body === "") return "";
  const bytes = new TextEncoder().encode(body);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return btoa(import_spark_md5.default.ArrayBuffer.hash(buffer, true));
}
function stringToSign(method, md5, contentType, timestamp, path) {
  return `${method.toUpperCase()}
${md5}
${contentType}
x-timestamp:${timestamp}
${path}`;
}
async function hmacSha256Base64(secretBase64, message) {
  const key = await crypto.subtle.importKey(
    "raw",
    base64ToBytes(secretBase64),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"]
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message));
  return bytesToBase64(new Uint8Array(mac));
}
function signRealtimeAuth(secretBase64, nonce, timestamp) {
  return hmacSha256Base64(secretBase64, stringToSign("GET", "", "", timestamp, `/v1/realtime/${nonce}`));
}
async function signRequest(secretBase64, method, path, body, contentType, timestamp) {
  const md5 = contentMd5(body);
  const signature = await hmacSha256Base64(secretBase64, stringToSign(method, md5, contentType, timestamp, path));
  return { contentMd5: md5, signature };
}
function isoSeconds(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
function isFunction(x) {
  return typeof x === "function";
}
function isSaved(x) {
  const o = x;
  return !!o && typeof o === "object" && typeof o.sessionId === "string" && typeof o.sessionSecret === "string";
}
function passwordIdentity(x) {
  const o = x;
  if (!o || typeof o !== "object" || typeof o.password !== "string") return null;
  for (const type of ["username", "email", "number"]) {
    if (typeof o[type] === "string") return { type, endpoint: o[type], password: o.password };
  }
  return null;
}
var JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
function ticketExchange(x) {
  if (typeof x === "string") {
    const s = x.trim();
    if (JWT_SHAPE.test(s)) return { scheme: "Bearer", credential: s };
    if (s.includes(":")) return { scheme: "User", credential: s };
    return null;
  }
  const o = x;
  if (!o || typeof o !== "object") return null;
  if (typeof o.userTicket === "string") return { scheme: "User", credential: o.userTicket };
  if (typeof o.jwt === "string") return { scheme: "Bearer", credential: o.jwt };
  if (typeof o.authorization === "string") return { scheme: "User", credential: o.authorization };
  return null;
}
function servicesFor(capabilities) {
  const services = {};
  if (capabilities.messaging) services.im = true;
  if (capabilities.calling) services.calling = true;
  if (capabilities.video) services.video = true;
  return services;
}
var FINAL_REFUSALS = /* @__PURE__ */ new Set([
  "session_revoked",
  "session_expired",
  "user_disabled",
  "unknown_application",
  "origin_not_allowed",
  "capability_not_granted",
  "unauthorized",
  "forbidden"
]);
function errorCodeForClose(code) {
  return code >= 4e3 && code < 5e3 ? (code - 4e3) * 100 : 0;
}
function errorFromFrame(frame) {
  const code = typeof frame.errorCode === "number" ? frame.errorCode : 0;
  const reason = typeof frame.reason === "string" ? frame.reason : "unknown_error";
  const message = typeof frame.message === "string" ? frame.message : `Callbox refused: ${reason}`;
  const retryable = typeof frame.retryable === "boolean" ? frame.retryable : reason === "rate_limited";
  const retryAfter = typeof frame.retryAfter === "number" ? frame.retryAfter : null;
  const serverTime = typeof frame.serverTime === "string" ? frame.serverTime : null;
  return new CallboxError(code, reason, message, retryable, null, retryAfter, serverTime);
}
function connectionLost() {
  return new CallboxError(0, "connection_lost", "the realtime connection was lost before Callbox answered", true);
}
var MAX_QUEUED = 1e3;
function stoppedError() {
  return localError("not_started", "the realtime connection is stopped: start() the client first");
}
function unrefTimer(timer) {
  timer.unref?.();
  return timer;
}
var OPEN = 1;
var RealtimeConnection = class {
  #hooks;
  #deadAfterMs;
  #backoffInitialMs;
  #backoffMaxMs;
  #requestTimeoutMs;
  #handlers = /* @__PURE__ */ new Map();
  /** Requests by ref, in the order they were made (a Map keeps insertion order: the queue is flushed in it). */
  #pending = /* @__PURE__ */ new Map();
  #state = "idle";
  #socket = null;
  #ready = null;
  #readyAt = 0;
  /** The highest `seq` handled: the `resumeAfter` of the next connection. */
  #cursor = 0;
  #attempt = 0;
  #refCounter = 0;
  /** The last `error` frame without a `ref`: it says why the server is about to close. */
  #lastError = null;
  #deadTimer = null;
  #pingTimer = null;
  #retryTimer = null;
  #lastReceived = 0;
  /** @internal */
  constructor(hooks, options = {}) {
    this.#hooks = hooks;
    this.#deadAfterMs = options.deadAfterMs ?? 35e3;
    this.#backoffInitialMs = options.backoffInitialMs ?? 500;
    this.#backoffMaxMs = options.backoffMaxMs ?? 3e4;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 3e4;
  }
  get state() {
    return this.#state;
  }
  /** What the server said in `ready` on the current connection, or null while not connected. */
  get ready() {
    return this.#ready;
  }
  /** The highest delivery sequence number handled so far (0 for none). */
  get cursor() {
    return this.#cursor;
  }
  /** Calls `handler` with every frame of this `type`; returns the function that unsubscribes it. */
  on(type, handler) {
    let set = this.#handlers.get(type);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.#handlers.set(type, set);
    }
    set.add(handler);
    return () => {
      set.delete(handler);
    };
  }
  /** Sends a frame on the authenticated connection; false (nothing sent) while not connected. */
  send(frame) {
    const socket = this.#socket;
    if (this.#state !== "connected" || !socket || socket.readyState !== OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }
  /**
   * Sends a frame with a fresh `ref` and resolves to the server's answer carrying that `ref` (an `error` answer
   * rejects with its `CallboxError`). Made while not connected, it waits for the next connection; a connection
   * lost after it was sent rejects it with the retryable `connection_lost` (it may or may not have been taken).
   */
  request(frame) {
    if (this.#state === "stopped" || this.#state === "idle") return Promise.reject(stoppedError());
    let queued = 0;
    for (const pending of this.#pending.values()) if (!pending.sent) queued += 1;
    if (queued >= MAX_QUEUED) {
      const message = `${MAX_QUEUED} requests already wait for the connection`;
      return Promise.reject(new CallboxError(0, "queue_full", message, true));
    }
    const ref = `r${++this.#refCounter}`;
    const withRef = { ...frame, ref };
    return new Promise((resolve, reject) => {
      const timer = unrefTimer(
        setTimeout(() => {
          if (this.#pending.get(ref) !== pending) return;
          this.#pending.delete(ref);
          const message = pending.sent ? "Callbox did not answer in time (the request may or may not have been taken)" : "no connection to send the request on in time";
          reject(new CallboxError(0, "timeout", message, true));
        }, this.#requestTimeoutMs)
      );
      const pending = {
        frame: withRef,
        sent: false,
        resolve: (answer) => {
          clearTimeout(timer);
          resolve(answer);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        }
      };
      this.#pending.set(ref, pending);
      if (this.send(withRef)) pending.sent = true;
    });
  }
  /** Opens the connection (again, from a fresh cursor) for a new session. */
  open() {
    this.#stopQuietly(stoppedError());
    this.#cursor = 0;
    this.#attempt = 0;
    this.#setState("connecting");
    this.#connect();
  }
  /** Closes the connection for good; requests not answered yet are rejected. */
  stop() {
    this.#stopQuietly(stoppedError());
  }
  // -- internals --------------------------------------------------------------------------------------------
  #stopQuietly(error) {
    const wasRunning = this.#state !== "idle" && this.#state !== "stopped";
    this.#clearTimers();
    if (this.#retryTimer !== null) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
    }
    const socket = this.#detach();
    if (socket) {
      try {
        socket.close(1e3, "terminated");
      } catch {
      }
    }
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    if (wasRunning) this.#setState("stopped");
  }
  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#hooks.stateChanged(state);
  }
  #connect() {
    this.#retryTimer = null;
    this.#ready = null;
    this.#lastError = null;
    let socket;
    try {
      socket = new this.#hooks.WebSocket(this.#hooks.url);
    } catch {
      this.#hooks.log("warn", "realtime: could not open a WebSocket");
      this.#scheduleReconnect(0);
      return;
    }
    this.#socket = socket;
    this.#lastReceived = Date.now();
    this.#armDeadTimer();
    socket.onmessage = (event) => {
      if (this.#socket === socket) this.#receive(event.data);
    };
    socket.onclose = (event) => {
      if (this.#socket === socket) this.#closed(event.code, event.reason);
    };
    socket.onerror = () => {
    };
  }
  /** Forgets the current socket (its late events are ignored from now on). */
  #detach() {
    const socket = this.#socket;
    this.#socket = null;
    this.#ready = null;
    if (socket) {
      socket.onmessage = null;
      socket.onclose = null;
      socket.onopen = null;
      socket.onerror = () => {
      };
    }
    return socket;
  }
  #clearTimers() {
    if (this.#deadTimer !== null) {
      clearTimeout(this.#deadTimer);
      this.#deadTimer = null;
    }
    if (this.#pingTimer !== null) {
      clearInterval(this.#pingTimer);
      this.#pingTimer = null;
    }
  }
  #armDeadTimer() {
    if (this.#deadTimer !== null) clearTimeout(this.#deadTimer);
    this.#deadTimer = unrefTimer(
      setTimeout(() => {
        this.#deadTimer = null;
        this.#hooks.log("warn", `realtime: no frame for ${this.#deadAfterMs} ms, connecting again`);
        const socket = this.#socket;
        if (socket) {
          this.#detach();
          try {
            socket.close(4408, "heartbeat_timeout");
          } catch {
          }
        }
        this.#closed(1006, "heartbeat_timeout");
      }, this.#deadAfterMs)
    );
  }
  #receive(data) {
    this.#lastReceived = Date.now();
    this.#armDeadTimer();
    if (typeof data !== "string") {
      this.#hooks.log("warn", "realtime: ignored a binary frame");
      return;
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      this.#hooks.log("warn", "realtime: ignored a frame that is not JSON");
      return;
    }
    if (!frame || typeof frame !== "object" || typeof frame.type !== "string") {
      this.#hooks.log("warn", "realtime: ignored a frame without a type");
      return;
    }
    if (frame.type !== "error") this.#lastError = null;
    switch (frame.type) {
      case "ping":
        this.#sendRaw({ type: "pong" });
        return;
      case "pong":
        return;
      case "challenge":
        this.#authenticate(frame);
        return;
      case "ready":
        this.#becomeReady(frame);
        break;
      case "error":
        if (this.#answer(frame)) return;
        this.#lastError = frame;
        this.#hooks.log("warn", `realtime: the server said ${String(frame.reason)}`);
        break;
      default:
        if (this.#answer(frame)) return;
    }
    this.#dispatch(frame);
  }
  /** Settles the request this frame answers, if it carries a known `ref`. */
  #answer(frame) {
    if (typeof frame.ref !== "string") return false;
    const pending = this.#pending.get(frame.ref);
    if (!pending) return false;
    this.#pending.delete(frame.ref);
    if (frame.type === "error") pending.reject(errorFromFrame(frame));
    else pending.resolve(frame);
    return true;
  }
  #dispatch(frame) {
    const handlers = this.#handlers.get(frame.type);
    if (handlers) {
      for (const handler of [...handlers]) {
        try {
          handler(frame);
        } catch {
          this.#hooks.log("error", `realtime: a ${frame.type} handler threw`);
        }
      }
    }
    if (typeof frame.seq === "number" && frame.seq > this.#cursor) this.#cursor = frame.seq;
  }
  #sendRaw(frame) {
    const socket = this.#socket;
    if (socket && socket.readyState === OPEN) socket.send(JSON.stringify(frame));
  }
  #authenticate(challenge) {
    const socket = this.#socket;
    const nonce = challenge.nonce;
    if (typeof nonce !== "string" || nonce === "") {
      this.#hooks.log("warn", "realtime: a challenge without a nonce");
      return;
    }
    this.#hooks.authFrame(nonce, this.#cursor > 0 ? this.#cursor : null).then((auth) => {
      if (this.#socket === socket) this.#sendRaw(auth);
    }).catch(() => {
      this.#hooks.log("error", "realtime: could not sign the auth frame");
      if (this.#socket === socket) socket?.close(1e3, "no_session");
    });
  }
  #becomeReady(ready) {
    this.#ready = ready;
    this.#readyAt = Date.now();
    this.#hooks.log("info", "realtime: connected");
    this.#setState("connected");
    const heartbeatMs = 1e3 * (typeof ready.heartbeatSeconds === "number" ? ready.heartbeatSeconds : 15);
    if (this.#pingTimer !== null) clearInterval(this.#pingTimer);
    this.#pingTimer = unrefTimer(
      setInterval(() => {
        if (Date.now() - this.#lastReceived >= heartbeatMs) this.#sendRaw({ type: "ping" });
      }, heartbeatMs)
    );
    for (const pending of this.#pending.values()) {
      if (!pending.sent && this.send(pending.frame)) pending.sent = true;
    }
  }
  #closed(code, reason) {
    const wasReady = this.#ready !== null;
    const readyFor = wasReady ? Date.now() - this.#readyAt : 0;
    this.#clearTimers();
    this.#detach();
    for (const [ref, pending] of this.#pending) {
      if (pending.sent) {
        this.#pending.delete(ref);
        pending.reject(connectionLost());
      }
    }
    if (this.#state === "stopped" || this.#state === "idle") return;
    if (readyFor >= 1e4) this.#attempt = 0;
    const last = this.#lastError;
    this.#lastError = null;
    if (code === 4401 || code === 4403) {
      const error = last && (last.reason === reason || !reason) ? errorFromFrame(last) : new CallboxError(errorCodeForClose(code), reason || "unauthorized", `the connection was closed: ${reason}`);
      this.#hooks.log("warn", `realtime: closed with ${code} ${error.reason}`);
      this.#setState("reconnecting");
      this.#hooks.refused(error).then(
        (again) => {
          if (this.#state !== "reconnecting" || this.#socket !== null || this.#retryTimer !== null) return;
          if (again) {
            this.#scheduleReconnect(0);
          } else {
            this.#stopQuietly(error);
            this.#hooks.ended(error);
          }
        },
        () => {
          this.#stopQuietly(error);
          this.#hooks.ended(error);
        }
      );
      return;
    }
    this.#hooks.log("info", `realtime: closed with ${code}${reason ? ` ${reason}` : ""}, connecting again`);
    const retryAfter = last && typeof last.retryAfter === "number" ? last.retryAfter * 1e3 : 0;
    this.#setState("reconnecting");
    this.#scheduleReconnect(retryAfter);
  }
  #scheduleReconnect(atLeastMs) {
    const base = Math.min(this.#backoffMaxMs, this.#backoffInitialMs * 2 ** this.#attempt);
    this.#attempt += 1;
    const delay = Math.max(atLeastMs, base / 2 + Math.random() * base / 2);
    this.#hooks.log("debug", `realtime: reconnecting in ${Math.round(delay)} ms`);
    this.#retryTimer = unrefTimer(setTimeout(() => this.#connect(), delay));
  }
};
var Message = class {
  /** Callbox's id: set once Callbox accepted the message (null before). */
  messageId;
  senderId;
  recipientIds;
  textBody;
  headers;
  /** Callbox's time for the message (the local time of `newMessage()` until accepted). */
  timestamp;
  /** @internal */
  constructor(messageId, senderId, recipientIds, textBody, headers, timestamp) {
    this.messageId = messageId;
    this.senderId = senderId;
    this.recipientIds = recipientIds;
    this.textBody = textBody;
    this.headers = headers;
    this.timestamp = timestamp;
  }
};
var SEEN_LIMIT = 1e4;
var BACKLOG_LIMIT = 1e3;
var RecentSet = class {
  #keys = /* @__PURE__ */ new Set();
  has(key) {
    return this.#keys.has(key);
  }
  add(key) {
    if (this.#keys.has(key)) return false;
    this.#keys.add(key);
    if (this.#keys.size > SEEN_LIMIT) {
      const oldest = this.#keys.values().next().value;
      if (oldest !== void 0) this.#keys.delete(oldest);
    }
    return true;
  }
};
function dateOr(text, fallback) {
  if (typeof text !== "string") return fallback;
  const at = Date.parse(text);
  return Number.isNaN(at) ? fallback : new Date(at);
}
var MessageClient = class {
  #context;
  #listeners = /* @__PURE__ */ new Set();
  #seenMessages = new RecentSet();
  #seenReceipts = new RecentSet();
  /** Messages that came while nobody listened for them, by id, in arrival order. */
  #backlog = /* @__PURE__ */ new Map();
  /** @internal */
  constructor(context) {
    this.#context = context;
    const connection = context.connection;
    if (connection) {
      connection.on("message", (frame) => this.#incoming(frame));
      connection.on("message.receipt", (frame) => this.#receipt(frame));
    }
  }
  /** A message to `recipients` (a user id or an array of them) with a text and optional small JSON headers. */
  newMessage(recipients, text, headers) {
    const ids = typeof recipients === "string" ? [recipients] : recipients;
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === "string" && id !== "")) {
      throw localError("invalid_argument", "newMessage() needs a user id or a non-empty array of them");
    }
    if (typeof text !== "string") throw localError("invalid_argument", "newMessage() needs a text");
    if (headers !== void 0 && (headers === null || typeof headers !== "object" || Array.isArray(headers))) {
      throw localError("invalid_argument", "newMessage() headers must be a JSON object");
    }
    return new Message(null, this.#context.userId(), [...ids], text, { ...headers ?? {} }, /* @__PURE__ */ new Date());
  }
  /**
   * Sends a message; resolves to it, with `messageId` and `timestamp` set, once Callbox stored it. Sent while
   * the connection is down, it goes out when it is back (within `requestTimeoutMs`, 30 s). `.fail()` receives a
   * `CallboxError` such as `payload_too_large` (text, headers, or too many recipients), `rate_limited` (with
   * `retryAfter`; the message was not taken), or the retryable `connection_lost` or `timeout` when Callbox did
   * not answer: the message may or may not have been taken, and sending it again makes a second one if it was.
   */
  send(message) {
    return CallboxPromise.from(
      (async () => {
        if (!(message instanceof Message)) throw localError("invalid_argument", "send() takes a newMessage()");
        const connection = this.#context.connection;
        if (!connection) throw new CallboxError(0, "realtime_unavailable", "no WebSocket in this environment", false);
        const frame = { type: "message.send", recipients: message.recipientIds, text: message.textBody };
        if (Object.keys(message.headers).length > 0) frame.headers = message.headers;
        const accepted = await connection.request(frame);
        if (typeof accepted.messageId !== "string") {
          throw localError("malformed_response", "message.accepted without a messageId");
        }
        message.messageId = accepted.messageId;
        message.timestamp = dateOr(accepted.timestamp, message.timestamp);
        this.#seenMessages.add(accepted.messageId);
        return message;
      })()
    );
  }
  /** Adds a listener; the first one with `onIncomingMessage` also gets the messages that came before it. */
  addEventListener(listener) {
    this.#listeners.add(listener);
    if (typeof listener.onIncomingMessage === "function" && this.#backlog.size > 0) {
      const held = [...this.#backlog.values()];
      this.#backlog.clear();
      for (const frame of held) this.#deliver(frame);
    }
  }
  removeEventListener(listener) {
    this.#listeners.delete(listener);
  }
  /** The realtime configuration Callbox hands this session (`GET /v1/configuration/user`). */
  getConfiguration() {
    return CallboxPromise.from(this.#context.client.call("GET", "/v1/configuration/user").then((r) => r.body));
  }
  #emit(name, value) {
    for (const listener of [...this.#listeners]) {
      const fn = listener[name];
      if (typeof fn !== "function") continue;
      try {
        fn.call(listener, value);
      } catch {
        this.#context.log("error", `messaging: ${name} threw`);
      }
    }
  }
  #incoming(frame) {
    const messageId = frame.messageId;
    if (typeof messageId !== "string" || messageId === "") return;
    if (this.#backlog.has(messageId)) return;
    const listening = [...this.#listeners].some((l) => typeof l.onIncomingMessage === "function");
    if (listening) {
      this.#deliver(frame);
    } else if (this.#seenMessages.has(messageId)) {
      this.#confirm(frame);
    } else if (this.#backlog.size < BACKLOG_LIMIT) {
      this.#backlog.set(messageId, frame);
    }
  }
  #deliver(frame) {
    const messageId = frame.messageId;
    const recipientIds = Array.isArray(frame.recipientIds) ? frame.recipientIds.filter((id) => typeof id === "string") : [];
    const fresh = this.#seenMessages.add(messageId);
    if (fresh) {
      const isObject = frame.headers && typeof frame.headers === "object" && !Array.isArray(frame.headers);
      const headers = isObject ? frame.headers : {};
      const message = new Message(
        messageId,
        typeof frame.senderId === "string" ? frame.senderId : "",
        recipientIds,
        typeof frame.text === "string" ? frame.text : "",
        headers,
        dateOr(frame.timestamp, /* @__PURE__ */ new Date())
      );
      this.#emit("onIncomingMessage", message);
    }
    this.#confirm(frame);
  }
  /**
   * Tells Callbox this user's client has the message. Only a recipient's copy carries the `seq` that names it in
   * the inbox; the copy of one's own message sent from another device has none and is not confirmed.
   */
  #confirm(frame) {
    const recipientIds = Array.isArray(frame.recipientIds) ? frame.recipientIds : [];
    if (typeof frame.seq !== "number" || !recipientIds.includes(this.#context.userId())) return;
    this.#context.connection?.send({ type: "message.received", messageId: frame.messageId, seq: frame.seq });
  }
  #receipt(frame) {
    const { messageId, recipientId, status } = frame;
    if (typeof messageId !== "string" || typeof recipientId !== "string") return;
    if (!this.#seenReceipts.add(`${status}
${messageId}
${recipientId}`)) return;
    const timestamp = dateOr(frame.timestamp, /* @__PURE__ */ new Date());
    if (status === "delivered") {
      this.#emit("onMessageDelivered", { messageId, recipientId, timestamp });
    } else if (status === "failed") {
      const reason = typeof frame.reason === "string" ? frame.reason : "failed";
      const error = new CallboxError(
        typeof frame.errorCode === "number" ? frame.errorCode : 0,
        reason,
        `the message could not be delivered to ${recipientId}: ${reason}`
      );
      this.#emit("onMessageFailed", { messageId, recipientId, reason, error, timestamp });
    }
  }
};
var JSON_TYPE = "application/json; charset=UTF-8";
var Client = class {
  applicationKey;
  capabilities;
  url;
  #log;
  #fetch;
  #refreshMarginMs;
  #offsetMs = null;
  #session = null;
  #provider = null;
  #refreshing = null;
  #timer = null;
  #listeners = /* @__PURE__ */ new Set();
  /** Null where there is no WebSocket (Node without one given in `options.realtime`). */
  #connection;
  /** Made with the client, so that messages arriving before the app asks for it are held, not lost. */
  #messageClient;
  constructor(options) {
    if (!options || typeof options.applicationKey !== "string" || options.applicationKey === "") {
      throw localError("invalid_argument", "new Client({applicationKey}) needs the application key");
    }
    this.applicationKey = options.applicationKey;
    this.capabilities = { ...options.capabilities ?? {} };
    const origin = globalThis.location?.origin;
    const url = options.url ?? origin;
    if (!url) throw localError("invalid_argument", "no url given and no page origin to default to");
    this.url = url.replace(/\/+$/, "");
    const sink = options.onLogMessage;
    this.#log = (level, message) => {
      if (sink) {
        try {
          sink({ level, message });
        } catch {
        }
      }
    };
    const f = options.fetch ?? globalThis.fetch;
    if (!f) throw localError("invalid_argument", "no fetch available");
    this.#fetch = options.fetch ? f : (input, init) => globalThis.fetch(input, init);
    this.#refreshMarginMs = 1e3 * (options.refreshMarginSeconds ?? 60);
    const realtime = options.realtime ?? {};
    const WebSocketClass = realtime.WebSocket ?? globalThis.WebSocket ?? null;
    this.#connection = WebSocketClass ? new RealtimeConnection(
      {
        url: `${this.url.replace(/^http/i, "ws")}/v1/realtime`,
        WebSocket: WebSocketClass,
        authFrame: (nonce, resumeAfter) => this.#authFrame(nonce, resumeAfter),
        log: this.#log,
        stateChanged: (state) => this.#emit("onConnectionStateChanged", state),
        refused: (error) => this.#realtimeRefused(error),
        ended: (error) => this.#ended(error)
      },
      realtime
    ) : null;
    this.#messageClient = new MessageClient({
      client: this,
      connection: this.#connection,
      userId: () => this.#session?.userId ?? "",
      log: this.#log
    });
  }
  /** Adds a listener for the client's life: started, failed, stopped, connection state. */
  addListener(listener) {
    this.#listeners.add(listener);
  }
  removeListener(listener) {
    this.#listeners.delete(listener);
  }
  /** The realtime connection's state (`idle` when none was asked for, or no WebSocket is available). */
  getConnectionState() {
    return this.#connection?.state ?? "idle";
  }
  /**
   * Starts a session from a ticket (`{userTicket}`, `{jwt}`, a bare JWT string), a username (or email, or
   * number) and password, a saved session (`getSession()`'s answer), or a credentials provider.
   */
  start(credentials) {
    return CallboxPromise.from(
      this.#start(credentials).catch((error) => {
        this.#connection?.stop();
        this.#stopTimer();
        this.#session = null;
        this.#provider = null;
        throw error;
      })
    );
  }
  async #start(credentials) {
    this.#connection?.stop();
    this.#stopTimer();
    this.#session = null;
    this.#provider = null;
    await this.#syncClock();
    if (isFunction(credentials)) {
      this.#provider = credentials;
      this.#log("info", "starting a session from the credentials provider");
      await this.#exchange(await this.#ticketFromProvider());
    } else if (isSaved(credentials)) {
      this.#log("info", "resuming a saved session");
      this.#session = {
        userId: credentials.userId,
        sessionId: credentials.sessionId,
        sessionSecret: credentials.sessionSecret,
        capabilities: [],
        expiresAt: Number.POSITIVE_INFINITY
      };
      try {
        await this.#describe();
      } catch (error) {
        this.#session = null;
        throw error;
      }
    } else {
      const password = passwordIdentity(credentials);
      let exchange;
      if (password) {
        this.#log("info", `logging in ${password.type} user`);
        exchange = ticketExchange(await this.#logIn(password));
      } else {
        exchange = ticketExchange(credentials);
      }
      if (!exchange) {
        throw localError(
          "invalid_argument",
          "start() takes {userTicket}, {jwt}, a JWT, {username, password}, a saved session or a function"
        );
      }
      await this.#exchange(exchange);
    }
    this.#openRealtime();
    this.#schedule();
    this.#log("info", "session started");
    this.#emit("onClientStarted");
    return this.getSession();
  }
  /** The current session, to save and pass to `start()` later; `null` before start and after terminate. */
  getSession() {
    const s = this.#session;
    return s ? { userId: s.userId, sessionId: s.sessionId, sessionSecret: s.sessionSecret } : null;
  }
  /** The capabilities Callbox granted this session. */
  getCapabilities() {
    return this.#session ? [...this.#session.capabilities] : [];
  }
  /**
   * Signs up a platform-managed user; resolves to `{userTicket}`, which `start()` accepts. Works only while
   * the application's platform-managed users are on.
   */
  newUser(user) {
    return CallboxPromise.from(
      (async () => {
        const id = passwordIdentity(user);
        if (!id) throw localError("invalid_argument", "newUser() takes {username, password}");
        await this.#syncClock();
        this.#log("info", `signing up a ${id.type} user`);
        const answer = await this.#request("POST", "/v1/users", `Application ${this.applicationKey}`, {
          password: id.password,
          identities: [{ type: id.type, endpoint: id.endpoint }]
        });
        return { userTicket: this.#ticketFrom(answer.body) };
      })()
    );
  }
  /** Ends the session on the server and forgets it here. */
  terminate() {
    return CallboxPromise.from(
      (async () => {
        this.#stopTimer();
        this.#provider = null;
        this.#connection?.stop();
        const s = this.#session;
        if (!s) return;
        try {
          await this.call("DELETE", `/v1/instances/id/${encodeURIComponent(s.sessionId)}`);
        } finally {
          this.#session = null;
          this.#log("info", "session terminated");
          this.#emit("onClientStopped", null);
        }
      })()
    );
  }
  /**
   * Messaging (the same object on every call); throws `capability_not_granted` when the session has no
   * `messaging` capability.
   */
  getMessageClient() {
    if (!this.#session) throw localError("not_started", "start() the client first");
    if (!this.#session.capabilities.includes("messaging")) {
      throw localError("capability_not_granted", "this session was not granted the messaging capability");
    }
    return this.#messageClient;
  }
  /** The user's identities (`GET /v1/user/profile`), a signed call. */
  getUserProfile() {
    return CallboxPromise.from(this.call("GET", "/v1/user/profile").then((r) => r.body));
  }
  /**
   * Makes a call signed with the session secret (PROTOCOL §4). A session started from a credentials provider
   * is refreshed first when it is about to expire, and once more when Callbox says it expired.
   */
  call(method, path, body) {
    return CallboxPromise.from(this.#call(method, path, body));
  }
  async #call(method, path, body) {
    if (!this.#session) throw localError("not_started", "start() the client first");
    if (this.#provider && this.#session.expiresAt - this.#now() <= this.#refreshMarginMs) {
      await this.refresh();
    }
    try {
      return await this.#signed(method, path, body);
    } catch (error) {
      if (this.#provider && error instanceof CallboxError && error.reason === "session_expired") {
        await this.refresh();
        return this.#signed(method, path, body);
      }
      throw error;
    }
  }
  /**
   * Re-authorizes the session with a fresh ticket from the credentials provider; one refresh in flight at a
   * time, whoever asks.
   */
  refresh() {
    if (!this.#refreshing) {
      this.#refreshing = this.#refresh().finally(() => {
        this.#refreshing = null;
      });
    }
    return CallboxPromise.from(this.#refreshing);
  }
  async #refresh() {
    if (!this.#provider) throw localError("not_started", "only a session started from a function can refresh");
    const s = this.#session;
    this.#log("info", "refreshing the session");
    const exchange = await this.#ticketFromProvider();
    if (!s) {
      await this.#exchange(exchange);
    } else {
      try {
        const answer = await this.#request(
          "PUT",
          `/v1/instances/id/${encodeURIComponent(s.sessionId)}/authorization`,
          `${exchange.scheme} ${exchange.credential}`,
          { ...this.#instanceBody(), instanceId: s.sessionId }
        );
        const grant = answer.body;
        if (typeof grant.secret !== "string") throw localError("malformed_response", "no secret in the answer");
        s.sessionSecret = grant.secret;
        if (typeof grant.id === "string") s.sessionId = grant.id;
        s.expiresAt = this.#now() + 1e3 * (typeof grant.expiresIn === "number" ? grant.expiresIn : 0);
        await this.#describe();
      } catch (error) {
        if (error instanceof CallboxError && (error.code === 40400 || error.reason === "session_expired")) {
          await this.#exchange(await this.#ticketFromProvider());
        } else {
          throw error;
        }
      }
    }
    this.#schedule();
    this.#log("info", "session refreshed");
  }
  // -- internals --------------------------------------------------------------------------------------------
  #now() {
    return Date.now();
  }
  #serverNow() {
    return Date.now() + (this.#offsetMs ?? 0);
  }
  async #syncClock() {
    if (this.#offsetMs !== null) return;
    const before = Date.now();
    const answer = await this.#request("GET", "/v1/timestamp", null, void 0);
    const after = Date.now();
    const ts = answer.body.timestamp;
    const server = typeof ts === "string" ? Date.parse(ts) : NaN;
    if (Number.isNaN(server)) throw localError("malformed_response", "GET /v1/timestamp gave no timestamp");
    this.#offsetMs = server - Math.round((before + after) / 2);
    this.#log("debug", `clock offset ${this.#offsetMs} ms`);
  }
  async #ticketFromProvider() {
    const provider = this.#provider;
    if (!provider) throw localError("not_started", "no credentials provider");
    let ticket;
    try {
      ticket = await provider();
    } catch (error) {
      if (error instanceof CallboxError) throw error;
      throw new CallboxError(0, "credentials_provider_failed", "the credentials provider failed", true);
    }
    const exchange = ticketExchange(ticket);
    if (!exchange) {
      throw localError("invalid_argument", "the credentials provider must resolve to {userTicket}, {jwt} or a JWT");
    }
    return exchange;
  }
  #instanceBody() {
    return { version: { sdk: "callbox-js", sdkVersion: VERSION }, services: servicesFor(this.capabilities) };
  }
  async #logIn(id) {
    const path = `/v1/users/${encodeURIComponent(id.type)}/${encodeURIComponent(id.endpoint)}/authentication`;
    const answer = await this.#request("POST", path, `Application ${this.applicationKey}`, { password: id.password });
    return { userTicket: this.#ticketFrom(answer.body) };
  }
  #ticketFrom(body) {
    const ticket = body.authorization;
    if (typeof ticket !== "string") throw localError("malformed_response", "no ticket in the answer");
    return ticket;
  }
  async #exchange(exchange) {
    const answer = await this.#request(
      "POST",
      "/v1/instance",
      `${exchange.scheme} ${exchange.credential}`,
      this.#instanceBody()
    );
    const grant = answer.body;
    if (typeof grant.id !== "string" || typeof grant.secret !== "string") {
      throw localError("malformed_response", "no session in the answer");
    }
    this.#session = {
      userId: "",
      sessionId: grant.id,
      sessionSecret: grant.secret,
      capabilities: [],
      expiresAt: this.#now() + 1e3 * (typeof grant.expiresIn === "number" ? grant.expiresIn : 0)
    };
    await this.#describe();
  }
  /** Reads the session back with a signed call: user, capabilities, expiry (and proves the secret works). */
  async #describe() {
    const s = this.#session;
    if (!s) throw localError("not_started", "no session");
    const answer = await this.#signed(
      "GET",
      `/v1/instances/id/${encodeURIComponent(s.sessionId)}`
    );
    const info = answer.body;
    if (typeof info.userId === "string") s.userId = info.userId;
    if (Array.isArray(info.capabilities)) s.capabilities = info.capabilities.filter((c) => typeof c === "string");
    if (typeof info.expiresAt === "string") {
      const at = Date.parse(info.expiresAt);
      if (!Number.isNaN(at)) s.expiresAt = at - (this.#offsetMs ?? 0);
    }
  }
  async #signed(method, path, body) {
    const s = this.#session;
    if (!s) throw localError("not_started", "start() the client first");
    const text = body === void 0 ? "" : JSON.stringify(body);
    const contentType = text === "" ? "" : JSON_TYPE;
    const timestamp = isoSeconds(this.#serverNow());
    const signPath = path.split("?")[0];
    const { signature } = await signRequest(s.sessionSecret, method, signPath, text, contentType, timestamp);
    return this.#send(method, path, `Instance ${s.sessionId}:${signature}`, text, contentType, timestamp);
  }
  async #request(method, path, authorization, body) {
    const text = body === void 0 || body === null ? "" : JSON.stringify(body);
    return this.#send(method, path, authorization, text, text === "" ? "" : JSON_TYPE, null);
  }
  async #send(method, path, authorization, text, contentType, timestamp) {
    const headers = {};
    if (authorization) headers.Authorization = authorization;
    if (contentType) headers["Content-Type"] = contentType;
    if (timestamp) headers["X-Timestamp"] = timestamp;
    let response;
    try {
      response = await this.#fetch(this.url + path, {
        method,
        headers,
        body: text === "" ? void 0 : text,
        credentials: "omit"
      });
    } catch {
      this.#log("warn", `${method} ${path.split("?")[0]}: no answer`);
      throw new CallboxError(0, "network_error", `no answer from Callbox for ${method} ${path.split("?")[0]}`, true);
    }
    const raw = await response.text();
    let parsed = null;
    if (raw !== "") {
      try {
        parsed = JSON.parse(raw);
      } catch {
        parsed = raw;
      }
    }
    if (!response.ok) {
      const error = errorFromResponse(response.status, parsed, response.headers.get("Retry-After"));
      this.#log("warn", `${method} ${path.split("?")[0]}: ${response.status} ${error.reason}`);
      throw error;
    }
    this.#log("debug", `${method} ${path.split("?")[0]}: ${response.status}`);
    return { status: response.status, body: parsed };
  }
  /** Whether this session keeps a realtime connection (asked for, granted, and a WebSocket to make it with). */
  #wantsRealtime() {
    const s = this.#session;
    if (!s || !this.#connection) return false;
    const asked = this.capabilities.messaging && s.capabilities.includes("messaging") || this.capabilities.calling && s.capabilities.includes("calling");
    return !!asked;
  }
  #openRealtime() {
    if (this.#wantsRealtime()) this.#connection?.open();
    else if (this.#connection === null && (this.capabilities.messaging || this.capabilities.calling)) {
      this.#log("warn", "no WebSocket in this environment: no realtime connection");
    }
  }
  /**
   * A session started from a credentials provider is refreshed with a fresh ticket before it expires; one with
   * a realtime connection is renewed with a signed `POST /v1/instance`, the connection staying open.
   */
  #schedule(retryMs) {
    this.#stopTimer();
    const s = this.#session;
    if (!s || !Number.isFinite(s.expiresAt)) return;
    const provider = this.#provider !== null;
    if (!provider && !this.#wantsRealtime()) return;
    const remaining = s.expiresAt - this.#now();
    const delay = retryMs ?? (provider ? Math.max(0, remaining - this.#refreshMarginMs) : Math.max(remaining - this.#refreshMarginMs, remaining / 2, 0));
    if (delay > 2 ** 31 - 1) return;
    const timer = setTimeout(() => {
      this.#timer = null;
      const renewal = provider ? this.refresh() : this.#renewOnce();
      renewal.catch((error) => {
        const reason = error instanceof CallboxError ? error.reason : "unknown";
        this.#log("error", `background ${provider ? "refresh" : "renewal"} failed: ${reason}`);
        if (error instanceof CallboxError && error.retryable && this.#session === s) {
          this.#schedule(Math.min(3e4, Math.max(1e3, (s.expiresAt - this.#now()) / 2)));
        }
      });
    }, delay);
    timer.unref?.();
    this.#timer = timer;
  }
  /** One renewal at a time, sharing the refresh guard (the realtime auth frame waits for it). */
  #renewOnce() {
    if (!this.#refreshing) {
      this.#refreshing = this.#renew().finally(() => {
        this.#refreshing = null;
      });
    }
    return this.#refreshing;
  }
  /** Extends the session (signed `POST /v1/instance`): a new expiry and a new secret; the socket stays open. */
  async #renew() {
    const s = this.#session;
    if (!s) return;
    this.#log("info", "renewing the session");
    const answer = await this.#signed(
      "POST",
      "/v1/instance",
      this.#instanceBody()
    );
    const grant = answer.body;
    if (typeof grant.secret !== "string") throw localError("malformed_response", "no secret in the answer");
    if (this.#session !== s) return;
    s.sessionSecret = grant.secret;
    if (typeof grant.expiresIn === "number") s.expiresAt = this.#now() + 1e3 * grant.expiresIn;
    this.#schedule();
    this.#log("info", "session renewed");
  }
  /** The `auth` frame answering a realtime challenge: §4 signature over GET /v1/realtime/{nonce}. */
  async #authFrame(nonce, resumeAfter) {
    if (this.#refreshing) await this.#refreshing.catch(() => void 0);
    const s = this.#session;
    if (!s) throw localError("not_started", "no session");
    const timestamp = isoSeconds(this.#serverNow());
    const signature = await signRealtimeAuth(s.sessionSecret, nonce, timestamp);
    const frame = { type: "auth", sessionId: s.sessionId, timestamp, signature };
    if (resumeAfter !== null) frame.resumeAfter = resumeAfter;
    return frame;
  }
  /** Decides whether a refused realtime connection may try again (see `RealtimeHooks.refused`). */
  async #realtimeRefused(error) {
    if (!this.#session) return false;
    if (error.reason === "timestamp_skew") {
      this.#offsetMs = null;
      await this.#syncClock().catch(() => void 0);
      return true;
    }
    if (error.reason === "session_expired" && this.#provider) {
      try {
        await this.refresh();
        return true;
      } catch {
        return false;
      }
    }
    return !FINAL_REFUSALS.has(error.reason);
  }
  /** The server ended the session: forget it and tell the listeners. */
  #ended(error) {
    this.#log("error", `the session ended: ${error.reason}`);
    this.#stopTimer();
    this.#provider = null;
    this.#session = null;
    this.#emit("onClientFailed", error);
    this.#emit("onClientStopped", error);
  }
  #emit(name, value) {
    for (const listener of [...this.#listeners]) {
      const fn = listener[name];
      if (typeof fn !== "function") continue;
      try {
        fn.call(listener, this, value);
      } catch {
        this.#log("error", `${name} threw`);
      }
    }
  }
  #stopTimer() {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
};
export {
  CallboxError,
  CallboxPromise,
  Client,
  Message,
  MessageClient,
  RealtimeConnection,
  Client as SinchClient,
  VERSION,
  contentMd5,
  errorFromFrame,
  errorFromResponse,
  hmacSha256Base64,
  isoSeconds,
  signRealtimeAuth,
  signRequest,
  stringToSign
};
