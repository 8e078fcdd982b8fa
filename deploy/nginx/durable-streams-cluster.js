// The cluster edge's routing (deploy/nginx/durable-streams-cluster.conf.template):
// for each request, the node that the cluster's own placement picks for
// its stream, so that most requests reach the stream's owner without a
// hop between nodes (docs/cluster.md, "The edge").
//
// Invariant: nodeFor gives, for a stream path and a list of node ids,
// the node cluster.place (cluster/placement.go) gives: rendezvous hashing,
// each node's score the 64-bit FNV-1a of its id, a zero byte and the
// stream path, passed through SplitMix64's finalizer; the highest score
// wins, a tie goes to the smaller id. cluster/placement_njs_test.go checks
// it against place for many paths and node sets.
//
// njs 0.7.9 (Debian bookworm) has no BigInt, and its numbers are doubles
// exact to 2^53, so 64-bit values are four 16-bit limbs, least
// significant first: a product of two limbs plus carries stays far below
// 2^53.
//
// The stream path is the one the server derives (api.API.stream): the
// request's path as the client sent it, percent-decoded, after
// /v1/stream/; the creation of a fork (PUT with Stream-Forked-From) goes
// to its source's node, as api.routeKey sends it. Anything else (health,
// admin, a path that does not decode) goes to the round-robin upstream of
// all nodes.

var streamsRoute = '/v1/stream/';

// Upstream names: the template's per-node upstreams are this prefix and
// the node's 1-based position in $ds_node_ids.
var nodeUpstream = 'durable_streams_node_';
var anyUpstream = 'durable_streams_origin';

var fnvOffset = limbs('cbf29ce484222325');
var fnvPrime = limbs('00000100000001b3');
var mix1 = limbs('bf58476d1ce4e5b9');
var mix2 = limbs('94d049bb133111eb');

// limbs parses 16 hex digits into four 16-bit limbs, least significant first.
function limbs(hex) {
    return [3, 2, 1, 0].map(function (i) { return parseInt(hex.substr(4 * i, 4), 16); });
}

// mul returns a*b mod 2^64.
function mul(a, b) {
    var r = [0, 0, 0, 0];
    for (var i = 0; i < 4; i++) {
        var carry = 0;
        for (var j = 0; i + j < 4; j++) {
            var t = a[i] * b[j] + r[i + j] + carry;
            var lo = t % 0x10000;
            r[i + j] = lo;
            carry = (t - lo) / 0x10000;
        }
    }
    return r;
}

// xorShift returns x ^ (x >> k) for 0 < k < 64.
function xorShift(x, k) {
    var q = k >> 4, s = k & 15, r = x.slice();
    for (var i = 0; i < 4; i++) {
        var a = i + q < 4 ? x[i + q] : 0;
        var b = i + q + 1 < 4 ? x[i + q + 1] : 0;
        r[i] ^= ((a >>> s) | (b << (16 - s))) & 0xffff;
    }
    return r;
}

// fnv adds bytes (a Buffer) to the FNV-1a-64 state h, in place.
function fnv(h, bytes) {
    for (var i = 0; i < bytes.length; i++) {
        h[0] ^= bytes[i];
        var p = mul(h, fnvPrime);
        h[0] = p[0]; h[1] = p[1]; h[2] = p[2]; h[3] = p[3];
    }
}

// score is cluster.score: node's weight for path (both Buffers).
function score(node, path) {
    var h = fnvOffset.slice();
    fnv(h, node);
    fnv(h, [0]);
    fnv(h, path);
    h = xorShift(h, 30);
    h = mul(h, mix1);
    h = xorShift(h, 27);
    h = mul(h, mix2);
    return xorShift(h, 31);
}

// less reports whether 64-bit a < b.
function less(a, b) {
    for (var i = 3; i >= 0; i--) {
        if (a[i] !== b[i]) {
            return a[i] < b[i];
        }
    }
    return false;
}

// pick returns the index in ids (strings) of the node cluster.place
// chooses for path (a Buffer of the stream path's bytes); -1 if ids is
// empty.
function pick(path, ids) {
    var best = -1, bestScore = null;
    for (var i = 0; i < ids.length; i++) {
        var s = score(Buffer.from(ids[i]), path);
        if (best < 0 || less(bestScore, s) ||
            (!less(s, bestScore) && Buffer.compare(Buffer.from(ids[i]), Buffer.from(ids[best])) < 0)) {
            best = i;
            bestScore = s;
        }
    }
    return best;
}

// unescape percent-decodes bytes (a Buffer) like Go's url.PathUnescape
// ('+' stays); null if an escape is malformed, which the server refuses.
function unescape(bytes) {
    var out = [];
    for (var i = 0; i < bytes.length; i++) {
        var c = bytes[i];
        if (c === 0x25) {
            var hex = String.fromCharCode(bytes[i + 1], bytes[i + 2]);
            if (i + 2 >= bytes.length || !/^[0-9A-Fa-f]{2}$/.test(hex)) {
                return null;
            }
            c = parseInt(hex, 16);
            i += 2;
        }
        out.push(c);
    }
    return Buffer.from(out);
}

// streamName returns the stream path of a request path (a Buffer, not yet
// decoded, without the query), or null if it names no stream.
function streamName(raw) {
    var p = unescape(raw);
    var prefix = Buffer.from(streamsRoute);
    if (p === null || p.length <= prefix.length || p.slice(0, prefix.length).compare(prefix) !== 0) {
        return null;
    }
    return p.slice(prefix.length);
}

// forkSourceName is api.forkSource for the edge (no mount prefix): the
// stream path a Stream-Forked-From value names, or null.
function forkSourceName(v) {
    var b = Buffer.from(v);
    var m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\/?#]*([^?#]*)/.exec(v);
    if (m) {
        b = Buffer.from(m[1]);
    }
    var p = unescape(b);
    if (p === null) {
        p = b;
    }
    var prefix = Buffer.from(streamsRoute);
    if (p.length >= prefix.length && p.slice(0, prefix.length).compare(prefix) === 0) {
        return p.slice(prefix.length);
    }
    return p.length > 0 && p[0] === 0x2f ? p.slice(1) : p;
}

// routeKey is the stream path whose node serves a request: method, the
// request URI as sent (a Buffer or string, query included) and the
// Stream-Forked-From header (undefined if absent). null: not a stream.
function routeKey(method, requestURI, forkedFrom) {
    var raw = Buffer.from(requestURI);
    var q = raw.indexOf(0x3f); // '?'
    if (q >= 0) {
        raw = raw.slice(0, q);
    }
    var name = streamName(raw);
    if (name === null) {
        return null;
    }
    if (method === 'PUT' && forkedFrom) {
        var src = forkSourceName(forkedFrom);
        if (src !== null && src.length > 0) {
            return src;
        }
    }
    return name;
}

// nodeIds parses $ds_node_ids: ids separated by single spaces, the k-th
// being the node of upstream durable_streams_node_k. null if one is empty
// (a placeholder left unset), since positions would no longer match.
function nodeIds(s) {
    var ids = s.split(' ');
    for (var i = 0; i < ids.length; i++) {
        if (ids[i] === '') {
            return null;
        }
    }
    return ids;
}

// upstream is the js_set handler of $ds_upstream: the upstream of the
// node that owns the request's stream by placement. It never fails: a
// request it cannot place goes to any node, which forwards it.
function upstream(r) {
    try {
        var ids = nodeIds(r.variables.ds_node_ids || '');
        if (ids === null) {
            return anyUpstream;
        }
        var key = routeKey(r.method, r.rawVariables.request_uri, r.headersIn['Stream-Forked-From']);
        if (key === null) {
            return anyUpstream;
        }
        return nodeUpstream + (pick(key, ids) + 1);
    } catch (e) {
        r.error('durable-streams-cluster.js: ' + e);
        return anyUpstream;
    }
}

// nodeFor is for tests: the id of the node that serves a request.
function nodeFor(method, requestURI, forkedFrom, ids) {
    var key = routeKey(method, requestURI, forkedFrom);
    return key === null ? '' : ids[pick(key, ids)];
}

export default { upstream: upstream, nodeFor: nodeFor };
