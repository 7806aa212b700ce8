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
  request(frame, hooks = {}) {
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
        settledBy: hooks.settledBy,
        resolve: (answer) => {
          clearTimeout(timer);
          if (hooks.onAnswer) {
            try {
              hooks.onAnswer(answer);
            } catch {
              this.#hooks.log("error", `realtime: the ${answer.type} answer handler threw`);
            }
          }
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
        this.#settleBy(frame);
    }
    this.#dispatch(frame);
  }
  /** Settles the requests that this frame answers without their `ref` (`RequestHooks.settledBy`). */
  #settleBy(frame) {
    for (const [ref, pending] of this.#pending) {
      if (!pending.sent || !pending.settledBy) continue;
      let matches = false;
      try {
        matches = pending.settledBy(frame);
      } catch {
        matches = false;
      }
      if (matches) {
        this.#pending.delete(ref);
        pending.resolve(frame);
      }
    }
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
var CallEndCause = Object.freeze({
  CANCELED: "canceled",
  DENIED: "denied",
  NO_ANSWER: "no_answer",
  HUNG_UP: "hung_up",
  FAILURE: "failure",
  TIMEOUT: "timeout",
  OTHER_DEVICE_ANSWERED: "other_device_answered",
  REVOKED: "revoked"
});
var MAX_HELD_CANDIDATES = 200;
function callError(reason, message, retryable = false) {
  return new CallboxError(LOCAL_CODES[reason] ?? 0, reason, message, retryable);
}
function microphoneError(error) {
  const name = error && typeof error === "object" && typeof error.name === "string" ? error.name : "Error";
  const why = {
    NotAllowedError: "access to the microphone was refused (by the user or the browser's settings)",
    SecurityError: "the page may not use the microphone",
    NotFoundError: "no microphone was found",
    NotReadableError: "the microphone is in use by another application or could not be read",
    OverconstrainedError: "no microphone fits the constraints"
  };
  return callError("microphone_unavailable", `the microphone could not be opened: ${why[name] ?? name} (${name})`);
}
var Call = class {
  /** Callbox's call id (a UUIDv7): null for an outgoing call until Callbox placed it. */
  callId = null;
  /** The caller's user id. */
  fromId;
  /** The callee's user id. */
  toId;
  direction;
  /** The caller's `headers` (an outgoing call: the ones given to `callUser()`). */
  headers;
  /** The remote side's audio, once it arrived (set it as an `<audio>` element's `srcObject`). */
  incomingStream = null;
  /**
   * `URL.createObjectURL(incomingStream)` where the browser still allows it (legacy pages set it as `src`).
   * Current browsers removed object URLs of a MediaStream: there it stays null; use `incomingStream` as
   * `srcObject` instead.
   */
  incomingStreamURL = null;
  /** This side's microphone stream, once opened. */
  outgoingStream = null;
  /** The WebRTC peer connection (for `getStats()`), once made. */
  peerConnection = null;
  /** @internal */
  _state;
  /** @internal */
  _started;
  /** @internal */
  _answered = null;
  /** @internal */
  _established = null;
  /** @internal */
  _ended = null;
  /** @internal */
  _durationMs = 0;
  /** @internal */
  _cause = null;
  /** @internal */
  _endedBy = null;
  /** @internal */
  _detail = null;
  /** @internal */
  _error = null;
  /** @internal */
  _muted = false;
  #listeners = /* @__PURE__ */ new Set();
  #owner;
  /** @internal */
  constructor(owner, direction, fromId, toId, headers, started) {
    this.#owner = owner;
    this.direction = direction;
    this.fromId = fromId;
    this.toId = toId;
    this.headers = headers;
    this._started = started;
    this._state = direction === "outgoing" ? "initiating" : "ringing";
  }
  /** Where the call is: `initiating`, `ringing`, `answered`, `established` or `ended`. */
  get state() {
    return this._state;
  }
  /** Whether `mute()` is in force. */
  get muted() {
    return this._muted;
  }
  addEventListener(listener) {
    this.#listeners.add(listener);
  }
  removeEventListener(listener) {
    this.#listeners.delete(listener);
  }
  /**
   * Answers a ringing incoming call: opens the microphone, answers the offer, and resolves once Callbox took
   * the answer. `.fail()` gets `microphone_unavailable` (the call ends with `failure`, and is declined), or
   * Callbox's refusal such as `call_already_answered` (another device was first) or `not_found` (it ended).
   */
  answer() {
    return CallboxPromise.from(this.#owner._answer(this));
  }
  /**
   * Ends the call: an outgoing call not answered yet is canceled, a ringing incoming one declined, an answered
   * one hung up. Resolves once it ended (`onCallEnded` has fired).
   */
  hangup() {
    return CallboxPromise.from(this.#owner._hangup(this, null));
  }
  /** Declines a ringing incoming call (as `hangup()` does for one). */
  decline() {
    if (this.direction !== "incoming") {
      return CallboxPromise.from(Promise.reject(callError("invalid_argument", "only an incoming call is declined")));
    }
    return this.hangup();
  }
  /** Stops sending this side's audio (the microphone stays open; its track is disabled). */
  mute() {
    this._muted = true;
    this.#owner._applyMute(this);
  }
  unmute() {
    this._muted = false;
    this.#owner._applyMute(this);
  }
  /** The docs/calls.md cause word (compare with `CallEndCause.HUNG_UP` etc.); null while the call goes on. */
  getEndCause() {
    return this._cause;
  }
  getDetails() {
    return {
      startedTime: this._started,
      answeredTime: this._answered,
      establishedTime: this._established,
      endedTime: this._ended,
      duration: Math.round(this._durationMs / 1e3),
      durationMs: this._durationMs,
      endCause: this._cause,
      endedBy: this._endedBy,
      detail: this._detail,
      error: this._error
    };
  }
  /** The peer connection's statistics (`RTCPeerConnection.getStats()`); null before it exists. */
  getStats() {
    const pc = this.peerConnection;
    return CallboxPromise.from(pc && pc.getStats ? pc.getStats() : Promise.resolve(null));
  }
  /** @internal */
  _emit(name, log) {
    for (const listener of [...this.#listeners]) {
      const fn = listener[name];
      if (typeof fn !== "function") continue;
      try {
        fn.call(listener, this);
      } catch {
        log("error", `calls: ${name} threw`);
      }
    }
  }
};
var CallClient = class {
  #context;
  #listeners = /* @__PURE__ */ new Set();
  /** Calls that go on, by Callbox's id. */
  #calls = /* @__PURE__ */ new Map();
  /** Every record not ended, placed or not. */
  #records = /* @__PURE__ */ new Set();
  /** Incoming calls that rang while nobody listened for them. */
  #held = [];
  #iceServers = null;
  #iceServersUntil = 0;
  /** @internal */
  constructor(context) {
    this.#context = context;
    const connection = context.connection;
    if (connection) {
      connection.on("ready", () => this.#rejoinAll());
      connection.on("call.incoming", (frame) => this.#incoming(frame));
      connection.on("call.progress", (frame) => this.#progress(frame));
      connection.on("call.answered", (frame) => this.#answered(frame));
      connection.on("call.candidate", (frame) => this.#remoteCandidate(frame));
      connection.on("call.ended", (frame) => this.#endedFrame(frame));
    }
  }
  /**
   * Calls a user of this application. Returns the call at once; `onCallProgressing` fires when the callee's
   * device rings, `onCallEstablished` when media flows, `onCallEnded` at the end (a refusal, such as
   * `rate_limited` or `too_many_calls`, or a microphone that could not be opened, ends it with `failure` and the
   * error in `getDetails().error`).
   */
  callUser(userId, headers) {
    if (typeof userId !== "string" || userId === "") {
      throw callError("invalid_argument", "callUser() needs the callee's user id");
    }
    if (headers !== void 0 && (headers === null || typeof headers !== "object" || Array.isArray(headers))) {
      throw callError("invalid_argument", "callUser() headers must be a JSON object");
    }
    const call = new Call(this, "outgoing", this.#context.userId(), userId, { ...headers ?? {} }, /* @__PURE__ */ new Date());
    const record = this.#record(call, null);
    void this.#place(record);
    return call;
  }
  /** Adds a listener; the first one with `onIncomingCall` also gets the calls ringing since before it. */
  addEventListener(listener) {
    this.#listeners.add(listener);
    if (typeof listener.onIncomingCall === "function" && this.#held.length > 0) {
      const held = this.#held.splice(0);
      for (const record of held) if (record.call._state === "ringing") this.#emitIncoming(record.call);
    }
  }
  removeEventListener(listener) {
    this.#listeners.delete(listener);
  }
  /** The calls that go on (not ended), outgoing and incoming. */
  getCalls() {
    return [...this.#records].map((r) => r.call);
  }
  // -- for Call -----------------------------------------------------------------------------------------------
  /** @internal */
  async _answer(call) {
    const record = this.#recordOf(call);
    if (call.direction !== "incoming") throw callError("invalid_argument", "only an incoming call is answered");
    if (!record || call._state !== "ringing" || record.pc) {
      throw callError("invalid_argument", `the call cannot be answered now (it is ${call._state})`);
    }
    const connection = this.#context.connection;
    const callId = call.callId;
    let stream;
    try {
      stream = await this.#openMicrophone(call);
    } catch (error) {
      const failure = error instanceof CallboxError ? error : microphoneError(error);
      if (call.state !== "ended") {
        connection?.send({ type: "call.decline", callId });
        this.#finishLocally(record, "failure", failure);
      }
      throw failure;
    }
    try {
      const pc = await this.#peer(record);
      for (const track of stream.getTracks()) pc.addTrack(track, stream);
      await pc.setRemoteDescription({ type: "offer", sdp: record.offer ?? "" });
      await this.#remoteDescriptionSet(record);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      if (call._state !== "ringing") throw callError("not_found", "the call ended while it was being answered");
      if (!connection) throw callError("realtime_unavailable", "no realtime connection");
      const sdp = pc.localDescription?.sdp ?? answer.sdp ?? "";
      await connection.request(
        { type: "call.answer", callId, sdp },
        {
          settledBy: (f) => f.type === "call.answered" && f.callId === callId,
          onAnswer: (f) => this.#answered(f)
        }
      );
    } catch (error) {
      const failure = error instanceof CallboxError ? error : callError("failure", `answering failed: ${String(error)}`);
      if (call.state !== "ended") {
        const cause = failure.reason === "call_already_answered" ? "other_device_answered" : "failure";
        if (cause === "failure" && failure.reason !== "not_found") connection?.send({ type: "call.decline", callId });
        this.#finishLocally(record, cause, failure);
      }
      throw failure;
    }
  }
  /** @internal */
  async _hangup(call, failure) {
    const record = this.#recordOf(call);
    if (!record || call._state === "ended") return;
    if (record.ending) return record.ending;
    const connection = this.#context.connection;
    const answered = call._state === "answered" || call._state === "established";
    const localCause = failure ? "failure" : answered ? "hung_up" : call.direction === "incoming" ? "denied" : "canceled";
    if (failure) call._error = failure;
    this.#stopMedia(record);
    if (call.callId === null || !connection) {
      record.hangupAsked = true;
      this.#finishLocally(record, localCause, failure);
      return;
    }
    const callId = call.callId;
    const frame = call.direction === "incoming" && !answered ? { type: "call.decline", callId } : failure ? { type: "call.hangup", callId, cause: "failure" } : { type: "call.hangup", callId };
    const ended = (f) => f.type === "call.ended" && f.callId === callId;
    record.ending = new Promise((resolve) => {
      const timer = unrefTimer(
        setTimeout(() => {
          this.#finishLocally(record, localCause, failure);
          resolve();
        }, this.#context.options.hangupWaitMs ?? 3e3)
      );
      connection.request(frame, { settledBy: ended, onAnswer: (f) => ended(f) ? this.#endedFrame(f) : void 0 }).catch((error) => {
        this.#finishLocally(record, localCause, failure ?? (error instanceof CallboxError ? error : null));
      }).finally(() => {
        clearTimeout(timer);
        this.#finishLocally(record, localCause, failure);
        resolve();
      });
    });
    return record.ending;
  }
  /** @internal */
  _applyMute(call) {
    const stream = call.outgoingStream;
    if (!stream) return;
    for (const track of stream.getTracks()) if (track.kind === "audio") track.enabled = !call._muted;
  }
  /** The client's session ended or was terminated: every call ends here (terminate hangs them up first). */
  /** @internal */
  _shutdown(cause, error, hangUp) {
    for (const record of [...this.#records]) {
      const call = record.call;
      const answered = call._state === "answered" || call._state === "established";
      if (hangUp && call.callId) {
        const frame = call.direction === "incoming" && !answered ? { type: "call.decline", callId: call.callId } : { type: "call.hangup", callId: call.callId };
        this.#context.connection?.send(frame);
      }
      const local = hangUp ? answered ? "hung_up" : call.direction === "incoming" ? "denied" : "canceled" : cause;
      this.#finishLocally(record, local, error);
    }
  }
  // -- internals ----------------------------------------------------------------------------------------------
  #record(call, offer) {
    const record = {
      call,
      offer,
      pc: null,
      remoteCandidates: [],
      remoteDescriptionSet: false,
      localCandidates: [],
      mayTrickle: false,
      hangupAsked: false,
      mediaTimer: null,
      ending: null,
      connected: false
    };
    this.#records.add(record);
    if (call.callId) this.#calls.set(call.callId, record);
    return record;
  }
  #recordOf(call) {
    for (const record of this.#records) if (record.call === call) return record;
    return null;
  }
  async #place(record) {
    const call = record.call;
    const connection = this.#context.connection;
    try {
      if (!connection) throw callError("realtime_unavailable", "no WebSocket in this environment: no calls");
      const stream = await this.#openMicrophone(call);
      const pc = await this.#peer(record);
      for (const track of stream.getTracks()) pc.addTrack(track, stream);
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (call._state === "ended") return;
      const frame = { type: "call.start", calleeId: call.toId, sdp: pc.localDescription?.sdp ?? offer.sdp ?? "" };
      if (Object.keys(call.headers).length > 0) frame.headers = call.headers;
      await connection.request(frame, { onAnswer: (placed) => this.#placed(record, placed) });
    } catch (error) {
      if (call._state === "ended") return;
      const failure = error instanceof CallboxError ? error : callError("failure", `the call could not be set up: ${String(error)}`);
      this.#context.log("warn", `calls: the call to a user failed: ${failure.reason}`);
      this.#finishLocally(record, "failure", failure);
    }
  }
  /** `call.placed`: the call has its id; a hang-up asked for meanwhile goes out now. */
  #placed(record, frame) {
    if (typeof frame.callId !== "string") return;
    const call = record.call;
    if (record.hangupAsked || call._state === "ended") {
      this.#context.connection?.send({ type: "call.hangup", callId: frame.callId });
      return;
    }
    call.callId = frame.callId;
    call._started = dateOr(frame.startedAt, call._started);
    this.#calls.set(frame.callId, record);
    record.mayTrickle = true;
    this.#flushCandidates(record);
  }
  #incoming(frame) {
    const { callId, callerId, calleeId, sdp } = frame;
    if (typeof callId !== "string" || typeof callerId !== "string" || typeof sdp !== "string") return;
    if (this.#calls.has(callId)) return;
    const headers = frame.headers && typeof frame.headers === "object" && !Array.isArray(frame.headers) ? frame.headers : {};
    const call = new Call(
      this,
      "incoming",
      callerId,
      typeof calleeId === "string" ? calleeId : this.#context.userId(),
      headers,
      dateOr(frame.startedAt, /* @__PURE__ */ new Date())
    );
    call.callId = callId;
    const record = this.#record(call, sdp);
    const listening = [...this.#listeners].some((l) => typeof l.onIncomingCall === "function");
    if (listening) this.#emitIncoming(call);
    else this.#held.push(record);
  }
  #emitIncoming(call) {
    for (const listener of [...this.#listeners]) {
      if (typeof listener.onIncomingCall !== "function") continue;
      try {
        listener.onIncomingCall.call(listener, call);
      } catch {
        this.#context.log("error", "calls: onIncomingCall threw");
      }
    }
  }
  #progress(frame) {
    const record = typeof frame.callId === "string" ? this.#calls.get(frame.callId) : void 0;
    if (!record || record.call.direction !== "outgoing" || record.call._state !== "initiating") return;
    record.call._state = "ringing";
    record.call._emit("onCallProgressing", this.#context.log);
  }
  /** `call.answered`: to the caller with the answer's SDP; to the answering callee, its answer was taken. */
  #answered(frame) {
    const record = typeof frame.callId === "string" ? this.#calls.get(frame.callId) : void 0;
    if (!record) return;
    const call = record.call;
    if (call._state !== "initiating" && call._state !== "ringing") return;
    call._state = "answered";
    call._answered = dateOr(frame.answeredAt, /* @__PURE__ */ new Date());
    this.#armMediaTimer(record);
    if (call.direction === "outgoing") {
      const pc = record.pc;
      if (!pc || typeof frame.sdp !== "string") {
        void this._hangup(call, callError("failure", "the answer came without an SDP"));
        return;
      }
      pc.setRemoteDescription({ type: "answer", sdp: frame.sdp }).then(() => this.#remoteDescriptionSet(record)).catch(() => {
        void this._hangup(call, callError("failure", "the callee's answer could not be applied"));
      });
    } else {
      record.mayTrickle = true;
      this.#flushCandidates(record);
    }
    this.#maybeEstablished(record);
  }
  #remoteCandidate(frame) {
    const record = typeof frame.callId === "string" ? this.#calls.get(frame.callId) : void 0;
    const candidate = frame.candidate;
    if (!record || !candidate || typeof candidate !== "object") return;
    const init = candidate;
    if (record.remoteDescriptionSet && record.pc) {
      record.pc.addIceCandidate(init).catch(() => this.#context.log("warn", "calls: a remote candidate was refused"));
    } else if (record.remoteCandidates.length < MAX_HELD_CANDIDATES) {
      record.remoteCandidates.push(init);
    }
  }
  async #remoteDescriptionSet(record) {
    record.remoteDescriptionSet = true;
    const held = record.remoteCandidates.splice(0);
    for (const candidate of held) {
      try {
        await record.pc?.addIceCandidate(candidate);
      } catch {
        this.#context.log("warn", "calls: a remote candidate was refused");
      }
    }
  }
  #endedFrame(frame) {
    const record = typeof frame.callId === "string" ? this.#calls.get(frame.callId) : void 0;
    if (!record) return;
    const call = record.call;
    if (call._state === "ended") return;
    const cause = typeof frame.cause === "string" ? frame.cause : "failure";
    call._answered = typeof frame.answeredAt === "string" ? dateOr(frame.answeredAt, /* @__PURE__ */ new Date()) : call._answered;
    call._started = dateOr(frame.startedAt, call._started);
    call._endedBy = typeof frame.endedBy === "string" ? frame.endedBy : null;
    call._detail = typeof frame.detail === "string" ? frame.detail : null;
    const endedAt = dateOr(frame.endedAt, /* @__PURE__ */ new Date());
    const durationMs = typeof frame.durationMs === "number" && frame.durationMs >= 0 ? frame.durationMs : null;
    this.#finish(record, cause, call._error, endedAt, durationMs);
  }
  /** Ends a call with what this side knows (no `call.ended` from Callbox, or not yet). */
  #finishLocally(record, cause, error) {
    this.#finish(record, cause, error, /* @__PURE__ */ new Date(), null);
  }
  #finish(record, cause, error, endedAt, durationMs) {
    const call = record.call;
    if (call._state === "ended") return;
    this.#stopMedia(record);
    call._state = "ended";
    call._cause = cause;
    call._error = error ?? call._error;
    call._ended = endedAt;
    call._durationMs = durationMs ?? (call._answered ? Math.max(0, endedAt.getTime() - call._answered.getTime()) : 0);
    this.#records.delete(record);
    if (call.callId && this.#calls.get(call.callId) === record) this.#calls.delete(call.callId);
    const heldAt = this.#held.indexOf(record);
    if (heldAt >= 0) this.#held.splice(heldAt, 1);
    this.#context.log("info", `calls: a call ended: ${cause}`);
    call._emit("onCallEnded", this.#context.log);
  }
  #stopMedia(record) {
    if (record.mediaTimer !== null) {
      clearTimeout(record.mediaTimer);
      record.mediaTimer = null;
    }
    const pc = record.pc;
    if (pc) {
      pc.onicecandidate = null;
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      pc.oniceconnectionstatechange = null;
      try {
        pc.close();
      } catch {
      }
    }
    if (record.call.outgoingStream) this.#stopTracks(record.call.outgoingStream);
  }
  #stopTracks(stream) {
    for (const track of stream.getTracks()) {
      try {
        track.stop();
      } catch {
      }
    }
  }
  async #openMicrophone(call) {
    const given = this.#context.options.getUserMedia;
    const devices = globalThis.navigator?.mediaDevices;
    const open = given ?? (devices && devices.getUserMedia ? (c) => devices.getUserMedia(c) : null);
    if (!open) {
      throw callError(
        "microphone_unavailable",
        "the microphone could not be opened: this page has no navigator.mediaDevices (browsers give it only to https pages and http://localhost)"
      );
    }
    let stream;
    try {
      stream = await open({ audio: true, video: false });
    } catch (error) {
      throw microphoneError(error);
    }
    if (call._state === "ended") {
      this.#stopTracks(stream);
      throw callError("not_found", "the call ended before the microphone was open");
    }
    call.outgoingStream = stream;
    this._applyMute(call);
    return stream;
  }
  /** The RTCConfiguration of a call: Callbox's `iceServers` (cached until shortly before they expire), then the app's. */
  async #rtcConfiguration() {
    if (this.#iceServers === null || Date.now() >= this.#iceServersUntil) {
      try {
        const body = await this.#context.configuration();
        this.#iceServers = Array.isArray(body?.iceServers) ? body.iceServers : [];
        const expires = typeof body?.iceServersExpireAt === "string" ? Date.parse(body.iceServersExpireAt) : NaN;
        this.#iceServersUntil = Number.isNaN(expires) ? 0 : expires - 6e4;
      } catch (error) {
        const reason = error instanceof CallboxError ? error.reason : "error";
        this.#context.log("warn", `calls: no ICE servers from Callbox (${reason}): direct connections only`);
        this.#iceServers = [];
        this.#iceServersUntil = 0;
      }
    }
    const fromCallbox = { iceServers: this.#iceServers.map((s) => ({ ...s })) };
    const extra = this.#context.options.rtcConfiguration;
    if (typeof extra === "function") return extra(fromCallbox);
    if (extra && typeof extra === "object") {
      return { ...fromCallbox, ...extra, iceServers: [...fromCallbox.iceServers ?? [], ...extra.iceServers ?? []] };
    }
    return fromCallbox;
  }
  async #peer(record) {
    const configuration = await this.#rtcConfiguration();
    const make = this.#context.options.createPeerConnection ?? ((c) => {
      const Native = globalThis.RTCPeerConnection;
      if (!Native) throw callError("webrtc_unavailable", "this browser has no RTCPeerConnection");
      return new Native(c);
    });
    if (record.call._state === "ended") throw callError("not_found", "the call ended while it was being set up");
    const pc = make(configuration);
    record.pc = pc;
    record.call.peerConnection = pc;
    pc.onicecandidate = (event) => {
      const c = event?.candidate;
      if (!c) return;
      const init = typeof c.toJSON === "function" ? c.toJSON() : c;
      record.localCandidates.push(init);
      this.#flushCandidates(record);
    };
    pc.ontrack = (event) => {
      const call = record.call;
      let stream = event?.streams && event.streams[0] ? event.streams[0] : null;
      const MediaStreamClass = globalThis.MediaStream;
      if (!stream && event?.track && MediaStreamClass) stream = new MediaStreamClass([event.track]);
      if (!stream || call.incomingStream === stream) return;
      call.incomingStream = stream;
      call.incomingStreamURL = null;
      try {
        const url = URL.createObjectURL?.(stream);
        if (typeof url === "string") call.incomingStreamURL = url;
      } catch {
        call.incomingStreamURL = null;
      }
    };
    const stateChanged = () => this.#mediaState(record);
    pc.onconnectionstatechange = stateChanged;
    pc.oniceconnectionstatechange = stateChanged;
    return pc;
  }
  #flushCandidates(record) {
    const connection = this.#context.connection;
    const callId = record.call.callId;
    if (!record.mayTrickle || !callId || !connection || record.call._state === "ended") return;
    while (record.localCandidates.length > 0) {
      const candidate = record.localCandidates[0];
      if (!connection.send({ type: "call.candidate", callId, candidate })) return;
      record.localCandidates.shift();
    }
  }
  /** The peer connection's state: connected → established; failed, or disconnected too long → failure. */
  #mediaState(record) {
    const pc = record.pc;
    if (!pc || record.call._state === "ended") return;
    const state = pc.connectionState ?? "";
    const ice = pc.iceConnectionState ?? "";
    if (state === "failed" || ice === "failed") {
      void this._hangup(record.call, callError("media_failed", "the media connection failed (ICE found no working path)"));
      return;
    }
    const connected = state === "connected" || state === "" && (ice === "connected" || ice === "completed");
    if (connected) {
      record.connected = true;
      if (record.mediaTimer !== null) {
        clearTimeout(record.mediaTimer);
        record.mediaTimer = null;
      }
      this.#maybeEstablished(record);
    } else if (record.connected && (state === "disconnected" || ice === "disconnected")) {
      record.connected = false;
      this.#armMediaTimer(record);
    }
  }
  #armMediaTimer(record) {
    if (record.connected || record.mediaTimer !== null) return;
    const ms = this.#context.options.mediaTimeoutMs ?? 2e4;
    record.mediaTimer = unrefTimer(
      setTimeout(() => {
        record.mediaTimer = null;
        if (record.connected || record.call._state === "ended") return;
        void this._hangup(
          record.call,
          callError("media_failed", `no media flowed within ${ms} ms (ICE did not connect)`)
        );
      }, ms)
    );
  }
  #maybeEstablished(record) {
    const call = record.call;
    if (call._state !== "answered" || !record.connected) return;
    call._state = "established";
    call._established = /* @__PURE__ */ new Date();
    call._emit("onCallEstablished", this.#context.log);
  }
  /** A new realtime connection (`ready`): every call that goes on is rejoined (docs/calls.md §3). */
  #rejoinAll() {
    const connection = this.#context.connection;
    if (!connection) return;
    for (const record of [...this.#calls.values()]) {
      const call = record.call;
      const callId = call.callId;
      if (!callId || call._state === "ended") continue;
      this.#context.log("info", "calls: rejoining a call after a reconnect");
      connection.request(
        { type: "call.rejoin", callId },
        {
          onAnswer: (f) => {
            if (f.type !== "call.rejoined" || call._state === "ended") return;
            if (f.state === "answered" && call.direction === "outgoing" && !record.remoteDescriptionSet) {
              if (typeof f.sdp === "string" && (call._state === "initiating" || call._state === "ringing")) {
                this.#answered({ ...f, type: "call.answered" });
              } else if (typeof f.sdp !== "string") {
                void this._hangup(call, callError("failure", "the call was answered while the connection was down"));
              }
              return;
            }
            this.#flushCandidates(record);
          }
        }
      ).catch((error) => {
        if (!(error instanceof CallboxError) || call._state === "ended") return;
        if (error.reason === "not_found") this.#finishLocally(record, "timeout", error);
      });
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
  /** Made with the client too: a call ringing before the app asks for it is held for its first listener. */
  #callClient;
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
    this.#callClient = new CallClient({
      connection: this.#connection,
      options: { ...options.calls ?? {} },
      userId: () => this.#session?.userId ?? "",
      configuration: () => this.call("GET", "/v1/configuration/user").then((r) => r.body),
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
    this.#callClient._shutdown("hung_up", null, true);
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
        this.#callClient._shutdown("hung_up", null, true);
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
  /**
   * Calls (the same object on every call); throws `capability_not_granted` when the session has no `calling`
   * capability (ask for it with `capabilities: {calling: true}`).
   */
  getCallClient() {
    if (!this.#session) throw localError("not_started", "start() the client first");
    if (!this.#session.capabilities.includes("calling")) {
      throw localError("capability_not_granted", "this session was not granted the calling capability");
    }
    return this.#callClient;
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
    this.#callClient._shutdown("revoked", error, false);
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
  Call,
  CallClient,
  CallEndCause,
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
