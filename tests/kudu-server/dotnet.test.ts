import { strict as assert } from 'node:assert';
import {
  DEFAULT_DATETIME_JSON, jsonDateTimeOffsetUtc, jsonDateTimeUtc, logTimestamp, parseJsonDateTime, runIdFromTicks, ticksFromUnixMs,
  timeSpanText, UNIX_EPOCH_TICKS, vfsEtagFromTicks,
} from '../../testkit/kudu-server/dotnet';
import { splitArguments } from '../../testkit/kudu-server/job-run';
import { parseRange } from '../../testkit/kudu-server/vfs';

describe('kudu-server: .NET formats and parsing helpers', function () {
  const t = ticksFromUnixMs(Date.UTC(2016, 4, 19, 21, 49, 38, 193)) + 3245n; // ...38.1933245

  it('writes DateTime the way Json.NET does', () => {
    assert.equal(jsonDateTimeUtc(t), '2016-05-19T21:49:38.1933245Z');
    assert.equal(jsonDateTimeUtc(ticksFromUnixMs(Date.UTC(2016, 4, 19, 21, 49, 38, 100))), '2016-05-19T21:49:38.1Z');
    assert.equal(jsonDateTimeUtc(ticksFromUnixMs(Date.UTC(2016, 4, 19, 21, 49, 38))), '2016-05-19T21:49:38Z');
    assert.equal(jsonDateTimeUtc(undefined), DEFAULT_DATETIME_JSON);
    assert.equal(jsonDateTimeOffsetUtc(t), '2016-05-19T21:49:38.1933245+00:00');
    assert.equal(parseJsonDateTime('2016-05-19T21:49:38.1933245Z'), t);
    assert.equal(parseJsonDateTime(DEFAULT_DATETIME_JSON), undefined);
  });

  it('formats run ids, log stamps, TimeSpans and VFS ETags', () => {
    assert.equal(runIdFromTicks(t), '201605192149381933');
    assert.equal(logTimestamp(t), '05/19/2016 21:49:38');
    assert.equal(timeSpanText(21234567n), '00:00:02.1234567');
    assert.equal(timeSpanText(20000000n), '00:00:02');
    assert.equal(timeSpanText((26n * 3600n + 3n * 60n + 4n) * 10000000n + 5n), '1.02:03:04.0000005');
    // 0x089F7FF5F7B58000 with its bytes reversed.
    assert.equal(vfsEtagFromTicks(UNIX_EPOCH_TICKS), '"0080b5f7f57f9f08"');
  });

  it('splits ?arguments= like a shell', () => {
    assert.deepEqual(splitArguments(''), []);
    assert.deepEqual(splitArguments('  a  b '), ['a', 'b']);
    assert.deepEqual(splitArguments('--name "two words" \'single q\' x\\ y ""'), ['--name', 'two words', 'single q', 'x y', '']);
    assert.deepEqual(splitArguments('"say \\"hi\\""'), ['say "hi"']);
  });

  it('parses one byte range', () => {
    assert.deepEqual(parseRange('bytes=0-0', 10), { start: 0, end: 0 });
    assert.deepEqual(parseRange('bytes=-20', 10), { start: 0, end: 9 });
    assert.equal(parseRange('bytes=10-', 10), 'unsatisfiable');
    assert.equal(parseRange('bytes=-0', 10), 'unsatisfiable');
    assert.equal(parseRange('bytes=5-2', 10), undefined);
    assert.equal(parseRange('bytes=0-1,4-5', 10), undefined);
    assert.equal(parseRange('items=0-1', 10), undefined);
  });
});
