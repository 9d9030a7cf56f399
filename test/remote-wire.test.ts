// Golden bytes of the shared-store wire format (docs/PROTOCOL.md §7), and
// records a hostile server could send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { PathSets } from '../src/store/store.js';
import {
  decodeBundle, decodeRemoteEntry, decodeRemotePathSets, encodeBundle, encodeEntry, encodePathSets, entryKey, pathSetsKey,
} from '../src/store/remote/wire.js';

// gzip of {"outputs":[{"kind":"file","path":"/t/x.o","digest":"cc…","mode":420,"size":3}],"deleted":[],…,"buildId":"b1"}
const GOLDEN_ENTRY =
  'H4sIAAAAAAAEA6WPvQ6CQBAG3+WrNwL+NPsGFpZWhALYVTciR+72EiLh3Q36CE413WQWhOxT9gSuFzxtFDBuNigIU+sPMAov5l0AQeyuycHo/wSEVxAFH/clIdlbwYe1IYgO6irguiEkl5C3HL6uMf5cZ3NwSZAcW7cwXhP4ROijtq5ySeCK0GUb5LzddBXWDxOPPVDnAAAA';

test('keys: a tagged SHA-256 of the fingerprint, so an entry and a path set never share one', () => {
  assert.equal(entryKey('a'.repeat(64)), '36dc2fa2260886ca7f6c8894045b12985a5dd559452a97b622c4cdbb7cadc3b1');
  assert.equal(pathSetsKey('b'.repeat(64)), '64df56890d99cbcfec9eb4409cca037308ac9f4c8a711723da1547e028525312');
  assert.notEqual(entryKey('d'.repeat(64)), pathSetsKey('d'.repeat(64)));
});

test('a record is gzip of the JSON the local store keeps', () => {
  const e = decodeRemoteEntry(Buffer.from(GOLDEN_ENTRY, 'base64'));
  assert.deepEqual(e.outputs, [{ kind: 'file', path: '/t/x.o', digest: 'c'.repeat(64), mode: 420, size: 3 }]);
  assert.equal(e.buildId, 'b1');
  assert.deepEqual(decodeRemoteEntry(encodeEntry(e)), e);
});

test('what a hostile server sends is refused: not gzip, truncated, not a record, a bomb', () => {
  const good = Buffer.from(GOLDEN_ENTRY, 'base64');
  assert.throws(() => decodeRemoteEntry(Buffer.from('{"outputs":[]}')));
  assert.throws(() => decodeRemoteEntry(good.subarray(0, good.length - 9)));
  assert.throws(() => decodeRemoteEntry(Buffer.alloc(0)));
  assert.throws(() => decodeRemotePathSets(good), /format/);
  assert.throws(() => decodeRemoteEntry(gzipSync(JSON.stringify({ outputs: [{ kind: 'file', path: 'rel', digest: 'x' }] }))));
  const bomb = gzipSync(Buffer.alloc(65 << 20, 0x20));
  assert.ok(bomb.length < 1 << 20);
  assert.throws(() => decodeRemoteEntry(bomb), /buffer|length|larger/i);
});

// Path set record format 2 (PROTOCOL.md §7): each path and value once, each
// set as its kinds and index differences. Two runs of one compile that read
// a.h in two versions, and probed nope.h.
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const GOLDEN_SETS_JSON =
  '{"format":2,"command":"cc -c a.c","cwd":"/src","paths":["@make/a.c","@make/a.h","/usr/include/nope.h"],' +
  `"values":["${A}","${B}","absent","dir:${A}"],` +
  `"sets":[{"strong":"${'1'.repeat(64)}","k":"cce","p":[0,1,1],"v":[0,1,1]},{"strong":"${'2'.repeat(64)}","k":"cce","p":[0,1,1],"v":[0,0,2]}]}`;
const GOLDEN_SETS: PathSets = {
  command: 'cc -c a.c',
  cwd: '/src',
  sets: [
    { strong: '1'.repeat(64), entries: [{ k: 'c', p: '@make/a.c', v: A }, { k: 'c', p: '@make/a.h', v: B }, { k: 'e', p: '/usr/include/nope.h', v: 'absent' }] },
    { strong: '2'.repeat(64), entries: [{ k: 'c', p: '@make/a.c', v: A }, { k: 'c', p: '@make/a.h', v: A }, { k: 'e', p: '/usr/include/nope.h', v: 'absent' }] },
  ],
};

test('a path set record lists each path and value once; the sets index them', () => {
  assert.deepEqual(decodeRemotePathSets(gzipSync(GOLDEN_SETS_JSON)), GOLDEN_SETS);
  const first = GOLDEN_SETS.sets[0]!;
  const withListing: PathSets = { ...GOLDEN_SETS, sets: [{ ...first, entries: [...first.entries, { k: 'c', p: '@make/include', v: `dir:${A}` }] }] };
  assert.deepEqual(decodeRemotePathSets(encodePathSets(withListing)), withListing);
  // The encoder writes the golden form (the golden table has a value no set uses).
  assert.equal(gunzipSync(encodePathSets(GOLDEN_SETS)).toString(), GOLDEN_SETS_JSON.replace(`,"dir:${A}"`, ''));
});

test('a hostile path set record is refused: an index outside its table, counts that differ, an unknown kind, format 1', () => {
  const bad = (from: string, to: string) => gzipSync(GOLDEN_SETS_JSON.replace(from, to));
  assert.throws(() => decodeRemotePathSets(bad('"p":[0,1,1]', '"p":[0,1,2]')), /sets\[0\]\.p\[2\]/);
  assert.throws(() => decodeRemotePathSets(bad('"p":[0,1,1]', '"p":[0,-1,1]')), /sets\[0\]\.p\[1\]/);
  assert.throws(() => decodeRemotePathSets(bad('"v":[0,1,1]', '"v":[0,1]')), /sets\[0\]\.v/);
  assert.throws(() => decodeRemotePathSets(bad('"v":[0,1,1]', '"v":[0,1.5,1]')), /sets\[0\]\.v\[1\]/);
  assert.throws(() => decodeRemotePathSets(bad('"k":"cce"', '"k":"ccq"')), /sets\[0\]\.k\[2\]/);
  assert.throws(() => decodeRemotePathSets(bad('"paths":["@make/a.c"', '"paths":[7')), /paths\[0\]/);
  assert.throws(() => decodeRemotePathSets(bad('"format":2', '"format":1')), /format/);
  assert.throws(() => decodeRemotePathSets(bad('"cwd":"/src"', '"cwd":"src"')), /cwd/);
  assert.throws(() => decodeRemotePathSets(gzipSync(JSON.stringify(GOLDEN_SETS))), /format/);
});

test('a bundle: the path set record with entries and blobs inline, framed by lengths a hostile server cannot stretch', () => {
  const entry = Buffer.from(GOLDEN_ENTRY, 'base64');
  const pathSets = encodePathSets(GOLDEN_SETS);
  const b = { pathSets, entries: new Map([['a'.repeat(64), entry]]), blobs: new Map([['c'.repeat(64), Buffer.from('abc')]]) };
  const data = encodeBundle(b);
  assert.equal(data.subarray(0, 5).toString('latin1'), 'KBXB\x01');
  // Golden: 'KBXB' 1, u32 1 'P', u16 1 (32 bytes 0xaa, u32 1 'E'), u16 0.
  const golden = Buffer.from(`4b42584201000000015000 01${'aa'.repeat(32)}000000014500 00`.replaceAll(' ', ''), 'hex');
  const tiny = { pathSets: Buffer.from('P'), entries: new Map([['aa'.repeat(32), Buffer.from('E')]]), blobs: new Map<string, Buffer>() };
  assert.deepEqual(encodeBundle(tiny), golden);
  assert.deepEqual(decodeBundle(golden), tiny);
  assert.deepEqual(decodeBundle(data), b);
  assert.deepEqual(decodeBundle(encodeBundle({ pathSets, entries: new Map(), blobs: new Map() })).entries, new Map());
  assert.throws(() => decodeBundle(data.subarray(0, data.length - 1)), /past the end/);
  assert.throws(() => decodeBundle(Buffer.concat([data, Buffer.from([0])])), /after its end/);
  assert.throws(() => decodeBundle(pathSets), /not a bundle/);
  assert.throws(() => decodeBundle(Buffer.alloc(0)), /past the end/);
  const long = Buffer.from(data);
  long.writeUInt32BE(0xffffffff, 5);
  assert.throws(() => decodeBundle(long), /past the end/);
  const many = Buffer.concat([data.subarray(0, 9 + pathSets.length), Buffer.from([0xff, 0xff])]);
  assert.throws(() => decodeBundle(many), /65535 entries, more than 256/);
});
