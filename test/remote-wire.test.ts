// Golden bytes of the shared-store wire format (docs/PROTOCOL.md §7), and
// records a hostile server could send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { decodeRemoteEntry, decodeRemotePathSets, encodeRecord, entryKey, pathSetsKey } from '../src/store/remote/wire.js';

// gzip of {"outputs":[{"kind":"file","path":"/t/x.o","digest":"cc…","mode":420,"size":3}],"deleted":[],…,"buildId":"b1"}
const GOLDEN_ENTRY =
  'H4sIAAAAAAAEA6WPvQ6CQBAG3+WrNwL+NPsGFpZWhALYVTciR+72EiLh3Q36CE413WQWhOxT9gSuFzxtFDBuNigIU+sPMAov5l0AQeyuycHo/wSEVxAFH/clIdlbwYe1IYgO6irguiEkl5C3HL6uMf5cZ3NwSZAcW7cwXhP4ROijtq5ySeCK0GUb5LzddBXWDxOPPVDnAAAA';

test('keys: a tagged SHA-256 of the fingerprint, so an entry and a path set never share one', () => {
  assert.equal(entryKey('a'.repeat(64)), '36dc2fa2260886ca7f6c8894045b12985a5dd559452a97b622c4cdbb7cadc3b1');
  assert.equal(pathSetsKey('b'.repeat(64)), '88ee1d43ae2a27f6058acedbbbee8314a56b32082ef97dc018dee4c6e7cd4bfa');
  assert.notEqual(entryKey('d'.repeat(64)), pathSetsKey('d'.repeat(64)));
});

test('a record is gzip of the JSON the local store keeps', () => {
  const e = decodeRemoteEntry(Buffer.from(GOLDEN_ENTRY, 'base64'));
  assert.deepEqual(e.outputs, [{ kind: 'file', path: '/t/x.o', digest: 'c'.repeat(64), mode: 420, size: 3 }]);
  assert.equal(e.buildId, 'b1');
  assert.deepEqual(decodeRemoteEntry(encodeRecord(e)), e);
});

test('what a hostile server sends is refused: not gzip, truncated, not a record, a bomb', () => {
  const good = Buffer.from(GOLDEN_ENTRY, 'base64');
  assert.throws(() => decodeRemoteEntry(Buffer.from('{"outputs":[]}')));
  assert.throws(() => decodeRemoteEntry(good.subarray(0, good.length - 9)));
  assert.throws(() => decodeRemoteEntry(Buffer.alloc(0)));
  assert.throws(() => decodeRemotePathSets(good), /command/);
  assert.throws(() => decodeRemoteEntry(gzipSync(JSON.stringify({ outputs: [{ kind: 'file', path: 'rel', digest: 'x' }] }))));
  const bomb = gzipSync(Buffer.alloc(65 << 20, 0x20));
  assert.ok(bomb.length < 1 << 20);
  assert.throws(() => decodeRemoteEntry(bomb), /buffer|length|larger/i);
});
