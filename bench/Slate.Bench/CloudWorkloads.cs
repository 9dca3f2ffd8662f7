using System.Diagnostics;
using Microsoft.FSharp.Collections;
using Slate.Engine;
using M = Slate.Model;

namespace Slate.Bench;

/// <summary>Settings of one <c>cloud</c> run.</summary>
public sealed record CloudConfig(
    int Records,
    int Reads,
    int Scans,
    int Durable,
    IReadOnlyList<int> Writers,
    double WalSeconds,
    int WalRate,
    string Root);

/// <summary>One measured row of the cloud mode: the profile, the BENCHMARKS.md id and the phase result.</summary>
public sealed record CloudRow(string Profile, string Id, PhaseResult R, string? Note = null, double? OtherGetsPer1k = null)
{
    /// <summary>Object-store GETs (whole and ranged) per operation, when counted.</summary>
    public double? GetsPerOp => R.StoreGetsPer1k / 1000.0;

    /// <summary>Object-store PUTs per operation, when counted.</summary>
    public double? PutsPerOp => R.StorePutsPer1k / 1000.0;
}

/// <summary>Figures of the steady-WAL phase.</summary>
public sealed record WalSteady(
    string Profile,
    double Seconds,
    long Puts,
    long WalObjects,
    long L0Objects,
    long ManifestObjects,
    long StorePuts,
    double PutP50Us,
    double PutP99Us,
    long Errors)
{
    public double WalPerSec => Seconds > 0 ? WalObjects / Seconds : 0;

    /// <summary>PUTs per second that are neither L0 SSTs nor manifests (the WAL uploads seen by the bucket).</summary>
    public double NonL0PutsPerSec => Seconds > 0 ? (StorePuts - L0Objects - ManifestObjects) / Seconds : 0;
}

/// <summary>The object-store stack of one profile: local files, latency profile, metering.</summary>
public sealed class CloudStore
{
    public string Profile { get; }
    public LatencyProfile Latency { get; }
    public LocalFileObjectStore Local { get; }
    public MeteredObjectStore Metered { get; }

    public CloudStore(string root, LatencyProfile profile, int seed)
    {
        Profile = profile.Name;
        Latency = profile;
        Local = new LocalFileObjectStore(root);
        IObjectStore inner = Double.IsPositiveInfinity(profile.BytesPerSecond) && profile.Get.All(p => p.Milliseconds == 0) && profile.Put.All(p => p.Milliseconds == 0)
            ? Local
            : new LatencyObjectStore(Local, profile, new Random(seed));
        Classes = new GetClassCounter(inner);
        Metered = new MeteredObjectStore(Classes);
    }

    /// <summary>GET counts by object class (SST data vs the rest), below the meter.</summary>
    public GetClassCounter Classes { get; }

    /// <summary>(PUTs, GETs of SST data) so far: what the read phases count per read.</summary>
    public (long Puts, long Gets) SstCounts() => (Metered.Snapshot().Puts, Classes.SstGets);

    public ObjectStore Store => ObjectStore.FromEngine(Metered);

    /// <summary>(PUTs, GETs + ranged GETs) so far.</summary>
    public (long Puts, long Gets) Counts()
    {
        var s = Metered.Snapshot();
        return (s.Puts, s.Gets + s.GetRanges);
    }

    /// <summary>Objects under <c>db/dir/</c>, listed on the local store (not metered, no latency).</summary>
    public async Task<int> CountObjectsAsync(string db, string dir) =>
        (await ((IObjectStore)Local).ListAsync($"{db}/{dir}/", CancellationToken.None)).Count;

    /// <summary>The latency profile's p50 of small requests of <paramref name="verb"/>, in ms.</summary>
    public double P50Ms(ObjectStoreVerb verb) => LatencyProfileModule.quantile(LatencyProfileModule.tableFor(Latency, verb), 0.5);
}

/// <summary>The workloads of the cloud mode (BENCHMARKS.md W1, W3, W4, W5, W7 and the steady WAL).</summary>
public static class CloudWorkloads
{
    public const string ReadDb = "db";
    public const int MissSeed = 11;
    public const int ZipfSeed = 12;
    public const int ScanSeed = 13;

    private static readonly M.SizeTieredOptions Planner = new(4, 8, 4.0, 4);

    public static SlateOptions LoadOptions(CloudConfig c) => new()
    {
        L0SstSizeBytes = 64L * 1024 * 1024,
        L0MaxSsts = Math.Max(8, (int)Math.Ceiling(c.Records * 480.0 / (64L * 1024 * 1024)) + 2),
        BlockCacheBytes = 64L * 1024 * 1024,
        BlockSize = 4096,
        BloomBitsPerKey = 10,
        Compression = CompressionCodec.None,
        FlushInterval = TimeSpan.FromMilliseconds(100),
        Compactor = new CompactorOptions { PollInterval = TimeSpan.FromMilliseconds(500), MinCompactionSources = Planner.MinSources, MaxCompactionSources = Planner.MaxSources, SizeRatio = Planner.SizeRatio, MaxConcurrentCompactions = Planner.MaxConcurrent },
        GarbageCollector = null,
    };

    public static SlateOptions ReadOptions(long blockCacheBytes) => new()
    {
        BlockCacheBytes = blockCacheBytes,
        BlockSize = 4096,
        BloomBitsPerKey = 10,
        Compression = CompressionCodec.None,
        FlushInterval = TimeSpan.FromMilliseconds(100),
        Compactor = null,
        GarbageCollector = null,
    };

    public static SlateOptions WriteOptions() => new()
    {
        BlockCacheBytes = 64L * 1024 * 1024,
        BlockSize = 4096,
        BloomBitsPerKey = 10,
        Compression = CompressionCodec.None,
        FlushInterval = TimeSpan.FromMilliseconds(100),
        FlushOnDurableWait = true,
        Compactor = null,
        GarbageCollector = null,
    };

    /// <summary>A key between the loaded keys <paramref name="id"/> and id + 1 (last byte '1' instead of '0').</summary>
    public static byte[] MissingKeyInRange(long id)
    {
        var k = Workload.NewKey(id);
        k[^1] = (byte)'1';
        return k;
    }

    /// <summary>W1: fillrandom in batches of 1,024 (not durable), flush, wait until the compactor has nothing to do.</summary>
    public static async Task<(List<CloudRow> Rows, string Shape, long DataBytes)> LoadAsync(
        CloudStore s, Workload w, CloudConfig c, RssSampler rss)
    {
        var rows = new List<CloudRow>();
        var options = LoadOptions(c);
        await using var db = await SlateClient.OpenAsync(ReadDb, s.Store, options);
        const int batchSize = 1024;
        var order = w.LoadOrder;
        var batches = (order.Length + batchSize - 1) / batchSize;
        EngineUtil.Settle();
        var load = new Phase("Slate", "W1 load fillrandom, batches of 1,024 (not durable)", batches, rss, s.Counts);
        load.Start();
        for (var b = 0; b < batches; b++)
        {
            var batch = new WriteBatch();
            var end = Math.Min(order.Length, (b + 1) * batchSize);
            for (var i = b * batchSize; i < end; i++)
                batch.Put(Workload.NewKey(order[i]), w.Value(order[i]));
            var t0 = Stopwatch.GetTimestamp();
            await db.WriteAsync(batch);
            load.Latencies[b] = Stopwatch.GetTimestamp() - t0;
        }
        var lr = load.Stop(batches, 0, countPuts: true, countGets: false);
        // per-record figures: ops = records, latency stays per batch
        rows.Add(new CloudRow(s.Profile, "W1", lr with { Ops = order.Length, StorePutsPer1k = lr.StorePutsPer1k * batches / order.Length },
            "latency is per batch of 1,024; ops/s counts records"));

        var before = s.Counts();
        var sw = Stopwatch.StartNew();
        await db.FlushAsync(FlushType.MemTable);
        var flushed = sw.Elapsed.TotalSeconds;
        var shape = await WaitForCompactionIdleAsync(s, TimeSpan.FromMinutes(15));
        var quiet = sw.Elapsed.TotalSeconds;
        var after = s.Counts();
        rows.Add(new CloudRow(s.Profile, "W1", new PhaseResult("Slate", "W1 flush + compaction to quiet", 1, quiet, 0, 0, 0, rss.Max / 1048576.0, 0,
            after.Puts - before.Puts, after.Gets - before.Gets, 0, Timed: false),
            $"flush {flushed:F1} s, then the embedded compactor until the size-tiered planner proposes nothing; PUTs/GETs columns are totals"));
        await db.CloseAsync(new CloseOptions { FlushOnClose = null });

        var admin = SlateAdmin.Create(ReadDb, ObjectStore.FromEngine(s.Local));
        var m = await admin.ReadManifestAsync() ?? throw new InvalidOperationException("no manifest after the load");
        var dataBytes = m.L0.Sum(x => x.Size) + m.SortedRuns.Sum(r => r.Ssts.Sum(x => x.Size));
        return (rows, shape, dataBytes);
    }

    /// <summary>Polls the manifest until the size-tiered planner (the compactor's own) proposes nothing for it.</summary>
    private static async Task<string> WaitForCompactionIdleAsync(CloudStore s, TimeSpan limit)
    {
        var ms = new ManifestStore(s.Local, ReadDb);
        var sw = Stopwatch.StartNew();
        var quietPolls = 0;
        while (true)
        {
            var latest = await ms.ReadLatestAsync(CancellationToken.None);
            var m = latest.Value.Manifest;
            var proposals = M.SizeTiered.propose(Planner, m, FSharpList<M.Compaction>.Empty);
            quietPolls = proposals.IsEmpty ? quietPolls + 1 : 0;
            if (quietPolls >= 2)
            {
                var runs = m.Compacted.ToList();
                return $"{m.L0.Length} L0 SSTs, {runs.Count} sorted runs" + (runs.Count == 0 ? "" : $" ({string.Join(", ", runs.Select(r => $"SR{r.Id}: {r.Ssts.Length} SSTs"))})");
            }
            if (sw.Elapsed > limit)
                throw new TimeoutException($"compaction did not go quiet within {limit}");
            await Task.Delay(500);
        }
    }

    /// <summary>One single-caller pass of point reads; every value is checked.</summary>
    private static async Task<CloudRow> PointReadsAsync(CloudStore s, SlateClient db, Workload w, string id, string name, long[] ids, bool expectHit, RssSampler rss, string? note = null)
    {
        var ph = new Phase("Slate", name, ids.Length, rss, s.SstCounts);
        var lat = ph.Latencies;
        var keys = new byte[ids.Length][];
        for (var i = 0; i < ids.Length; i++)
            keys[i] = expectHit ? Workload.NewKey(ids[i]) : MissingKeyInRange(ids[i]);
        long errors = 0;
        var other0 = s.Classes.OtherGets;
        ph.Start();
        for (var i = 0; i < ids.Length; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            var v = await db.GetAsync(keys[i]);
            lat[i] = Stopwatch.GetTimestamp() - t0;
            if (expectHit ? v is null || !w.IsValueOf(ids[i], v) : v is not null) errors++;
        }
        var r = ph.Stop(ids.Length, errors, countPuts: false, countGets: true);
        return new CloudRow(s.Profile, id, r, note, (s.Classes.OtherGets - other0) * 1000.0 / ids.Length);
    }

    private static long[] Uniform(long n, int count, int seed)
    {
        var r = new Random(seed);
        var a = new long[count];
        for (var i = 0; i < count; i++) a[i] = r.NextInt64(n);
        return a;
    }

    /// <summary>W5, W4 and W7 over the loaded database under this profile, each on fresh clients.</summary>
    public static async Task<List<CloudRow>> ReadsAsync(CloudStore s, Workload w, CloudConfig c, long blockCacheBytes, RssSampler rss)
    {
        var rows = new List<CloudRow>();
        var missIds = Uniform(c.Records, Math.Max(2000, c.Reads), MissSeed);
        // other keys for the cached-filter pass: the first pass cached the blocks of its false positives
        var missIds2 = Uniform(c.Records, missIds.Length, MissSeed + 1);
        var uniformIds = Uniform(c.Records, c.Reads, Workload.ReadSeed);
        var zipfIds = Zipf.Ids(c.Records, c.Reads, 0.99, ZipfSeed);
        var beyond = new long[missIds.Length];
        for (var i = 0; i < beyond.Length; i++) beyond[i] = c.Records + 1_000_000_000L + missIds[i];

        void Log(CloudRow r) => Console.Error.WriteLine(
            $"[{DateTime.Now:HH:mm:ss}]   {s.Profile} {r.Id} {r.R.Workload}: {r.R.OpsPerSec:N0} ops/s, p50 {r.R.P50Us / 1000:F2} ms, p99 {r.R.P99Us / 1000:F2} ms, " +
            $"GETs/op {r.GetsPerOp:F4}{(r.R.Errors > 0 ? $", {r.R.Errors} WRONG" : "")}");
        void Add(CloudRow r)
        {
            rows.Add(r);
            Log(r);
        }

        Add(await RawGetsAsync(s, c, rss));

        // client A: missing keys (cold metadata, then cached filters), then uniform reads
        await using (var db = await SlateClient.OpenAsync(ReadDb, s.Store, ReadOptions(blockCacheBytes)))
        {
            Add(await PointReadsAsync(s, db, w, "W5", "W5 missing keys inside the key range, fresh client (loads index + filters)", missIds, false, rss));
            Add(await PointReadsAsync(s, db, w, "W5", "W5 missing keys inside the key range, filters cached", missIds2, false, rss,
                "other keys than the first pass (whose false-positive blocks are cached)"));
            Add(await PointReadsAsync(s, db, w, "W5", "W5 missing keys beyond the last key", beyond, false, rss));
            Add(await PointReadsAsync(s, db, w, "W4", "W4 point read uniform, cold", uniformIds, true, rss,
                "block cache empty; SST index + filters loaded by the W5 pass before"));
            Add(await PointReadsAsync(s, db, w, "W4", "W4 point read uniform, hot", uniformIds, true, rss, "the same ids again on the same client"));
            await db.CloseAsync(new CloseOptions { FlushOnClose = null });
        }

        // client B: zipf reads
        await using (var db = await SlateClient.OpenAsync(ReadDb, s.Store, ReadOptions(blockCacheBytes)))
        {
            await PointReadsAsync(s, db, w, "setup", "metadata warm-up", missIds, false, rss);
            Add(await PointReadsAsync(s, db, w, "W4", "W4 point read zipf 0.99, cold", zipfIds, true, rss,
                "block cache empty at start (hot keys repeat within the pass)"));
            Add(await PointReadsAsync(s, db, w, "W4", "W4 point read zipf 0.99, hot", zipfIds, true, rss, "the same ids again on the same client"));
            await db.CloseAsync(new CloseOptions { FlushOnClose = null });
        }

        // client C: scans
        await using (var db = await SlateClient.OpenAsync(ReadDb, s.Store, ReadOptions(blockCacheBytes)))
        {
            await PointReadsAsync(s, db, w, "setup", "metadata warm-up", missIds, false, rss);
            var starts = Uniform(Math.Max(1, c.Records - 10), c.Scans, ScanSeed);
            var ph = new Phase("Slate", "W7 10-row scan from a random start, cold", starts.Length, rss, s.SstCounts);
            long errors = 0;
            var other0 = s.Classes.OtherGets;
            ph.Start();
            for (var i = 0; i < starts.Length; i++)
            {
                var t0 = Stopwatch.GetTimestamp();
                var it = db.Scan(KeyRange.Create(Workload.NewKey(starts[i]), null));
                var got = await it.NextBatchAsync(10);
                ph.Latencies[i] = Stopwatch.GetTimestamp() - t0;
                await it.DisposeAsync();
                if (got.Count != Math.Min(10, c.Records - starts[i])) errors++;
                for (var j = 0; j < got.Count; j++)
                {
                    if (!got[j].Key.Span.SequenceEqual(Workload.NewKey(starts[i] + j)) || !w.IsValueOf(starts[i] + j, got[j].Value.Span))
                    {
                        errors++;
                        break;
                    }
                }
            }
            Add(new CloudRow(s.Profile, "W7", ph.Stop(starts.Length, errors, countPuts: false, countGets: true), "ScanOptions defaults (no read-ahead, blocks not cached)",
                (s.Classes.OtherGets - other0) * 1000.0 / starts.Length));

            var full = new Phase("Slate", "W7 full scan", 1, rss, s.SstCounts);
            long fullErrors = 0, n = 0;
            full.Start();
            var t1 = Stopwatch.GetTimestamp();
            var scan = db.Scan(KeyRange.All, new ScanOptions { ReadAheadBytes = 8L * 1024 * 1024, MaxFetchTasks = 4 });
            while (true)
            {
                var batch = await scan.NextBatchAsync(1024);
                foreach (var kv in batch)
                {
                    if (!kv.Key.Span.SequenceEqual(Workload.NewKey(n)) || !w.IsValueOf(n, kv.Value.Span)) fullErrors++;
                    n++;
                }
                if (batch.Count < 1024) break;
            }
            full.Latencies[0] = Stopwatch.GetTimestamp() - t1;
            await scan.DisposeAsync();
            if (n != c.Records) fullErrors += Math.Abs(c.Records - n);
            var fr = full.Stop(1, fullErrors, countPuts: false, countGets: true);
            // ops = rows, so ops/s is rows/s; GETs column = GETs per 1,000 rows
            Add(new CloudRow(s.Profile, "W7", fr with { Workload = "W7 full scan (rows)", Ops = n, StoreGetsPer1k = fr.StoreGetsPer1k / Math.Max(1, n) },
                "ScanOptions ReadAheadBytes = 8 MiB, MaxFetchTasks = 4; ops/s = rows/s"));
            await db.CloseAsync(new CloseOptions { FlushOnClose = null });
        }
        return rows;
    }

    /// <summary>
    /// Calibration: 4 KiB range GETs of an SST straight through the profile's store stack (no
    /// engine), one at a time, so the W4 cold latency can be compared with what the simulated
    /// bucket itself takes on this machine (timer slack included).
    /// </summary>
    private static async Task<CloudRow> RawGetsAsync(CloudStore s, CloudConfig c, RssSampler rss)
    {
        var ssts = await ((IObjectStore)s.Local).ListAsync($"{ReadDb}/compacted/", CancellationToken.None);
        var target = ssts.OrderByDescending(x => x.Size).First();
        var n = Math.Min(200, c.Reads);
        var r = new Random(21);
        IObjectStore store = s.Metered;
        var ph = new Phase("Slate", "raw 4 KiB range GET through the profile's store (no engine)", n, rss, s.SstCounts);
        ph.Start();
        for (var i = 0; i < n; i++)
        {
            var off = r.NextInt64(Math.Max(1, target.Size - 4096));
            var t0 = Stopwatch.GetTimestamp();
            var bytes = await store.GetRangeAsync(target.Key, off, off + 4096, CancellationToken.None);
            ph.Latencies[i] = Stopwatch.GetTimestamp() - t0;
            if (bytes.Length != 4096) throw new InvalidOperationException($"short range read of {target.Key}");
        }
        return new CloudRow(s.Profile, "cal", ph.Stop(n, 0, countPuts: false, countGets: true), "calibration of the simulated bucket");
    }

    /// <summary>W3: durable puts from 1, 4, 16, 64 writers into a fresh database of this profile; every put is read back.</summary>
    public static async Task<List<CloudRow>> DurableAsync(CloudStore s, Workload w, CloudConfig c, RssSampler rss)
    {
        var rows = new List<CloudRow>();
        var dbPath = $"w3-{s.Profile}";
        await using var db = await SlateClient.OpenAsync(dbPath, s.Store, WriteOptions());
        long nextId = 0;
        foreach (var writers in c.Writers)
        {
            var perWriter = Math.Max(10, (c.Durable + writers - 1) / writers);
            var total = perWriter * writers;
            var baseId = nextId;
            nextId += total;
            EngineUtil.Settle();
            var ph = new Phase("Slate", $"W3 durable put, {writers} writer{(writers == 1 ? "" : "s")}", total, rss, s.Counts);
            var lat = ph.Latencies;
            ph.Start();
            var tasks = new Task[writers];
            for (var t = 0; t < writers; t++)
            {
                var me = t;
                tasks[t] = Task.Run(async () =>
                {
                    for (var i = 0; i < perWriter; i++)
                    {
                        var slot = me * perWriter + i;
                        var id = baseId + slot;
                        var t0 = Stopwatch.GetTimestamp();
                        var h = await db.PutAsync(Workload.NewKey(id), w.Value(id));
                        await h.AwaitDurableAsync();
                        lat[slot] = Stopwatch.GetTimestamp() - t0;
                    }
                });
            }
            await Task.WhenAll(tasks);
            var r = ph.Stop(total, 0, countPuts: true, countGets: false);
            long missing = 0;
            for (var id = baseId; id < baseId + total; id++)
            {
                var v = await db.GetAsync(Workload.NewKey(id), new ReadOptions { Durability = DurabilityLevel.Remote });
                if (v is null || !w.IsValueOf(id, v)) missing++;
            }
            var row = new CloudRow(s.Profile, "W3", r with { Errors = missing });
            rows.Add(row);
            Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}]   {s.Profile} W3 {writers} writers: {r.OpsPerSec:N0} ops/s, p50 {r.P50Us / 1000:F2} ms, p99 {r.P99Us / 1000:F2} ms, PUTs/1k {r.StorePutsPer1k:F0}{(missing > 0 ? $", {missing} MISSING" : "")}");
        }
        await db.CloseAsync(new CloseOptions { FlushOnClose = null });
        return rows;
    }

    /// <summary>
    /// Steady writing for <see cref="CloudConfig.WalSeconds"/>: one writer paced at
    /// <see cref="CloudConfig.WalRate"/> non-durable single puts per second, FlushInterval 100 ms,
    /// FlushOnDurableWait irrelevant (nobody waits). Counts WAL, L0 and manifest objects created.
    /// </summary>
    public static async Task<WalSteady> SteadyWalAsync(CloudStore s, Workload w, CloudConfig c)
    {
        var dbPath = $"wal-{s.Profile}";
        await using var db = await SlateClient.OpenAsync(dbPath, s.Store, WriteOptions());
        // let the open's own uploads settle
        await db.FlushAsync(FlushType.Wal);
        var wal0 = await s.CountObjectsAsync(dbPath, "wal");
        var l00 = await s.CountObjectsAsync(dbPath, "compacted");
        var man0 = await s.CountObjectsAsync(dbPath, "manifest");
        var puts0 = s.Metered.Snapshot().Puts;
        var total = (int)(c.WalSeconds * c.WalRate);
        var lat = new long[total];
        var start = Stopwatch.GetTimestamp();
        var perTick = Math.Max(1, c.WalRate / 200); // bursts every 5 ms
        for (var i = 0; i < total; i++)
        {
            if (i % perTick == 0)
            {
                var due = start + (long)((double)i / c.WalRate * Stopwatch.Frequency);
                var now = Stopwatch.GetTimestamp();
                if (due > now) await Task.Delay(TimeSpan.FromTicks((due - now) * TimeSpan.TicksPerSecond / Stopwatch.Frequency));
            }
            var t0 = Stopwatch.GetTimestamp();
            await db.PutAsync(Workload.NewKey(i), w.Value(i));
            lat[i] = Stopwatch.GetTimestamp() - t0;
        }
        var end = start + (long)(c.WalSeconds * Stopwatch.Frequency);
        var left = end - Stopwatch.GetTimestamp();
        if (left > 0) await Task.Delay(TimeSpan.FromTicks(left * TimeSpan.TicksPerSecond / Stopwatch.Frequency));
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var puts1 = s.Metered.Snapshot().Puts;
        var wal1 = await s.CountObjectsAsync(dbPath, "wal");
        var l01 = await s.CountObjectsAsync(dbPath, "compacted");
        var man1 = await s.CountObjectsAsync(dbPath, "manifest");
        await db.FlushAsync(FlushType.Wal);
        long missing = 0;
        for (var i = 0; i < total; i++)
        {
            var v = await db.GetAsync(Workload.NewKey(i), new ReadOptions { Durability = DurabilityLevel.Remote });
            if (v is null || !w.IsValueOf(i, v)) missing++;
        }
        await db.CloseAsync(new CloseOptions { FlushOnClose = null });
        Array.Sort(lat);
        double Q(double q) => lat.Length == 0 ? 0 : lat[(int)Math.Round(q * (lat.Length - 1))] * 1e6 / Stopwatch.Frequency;
        var r = new WalSteady(s.Profile, seconds, total, wal1 - wal0, l01 - l00, man1 - man0, puts1 - puts0, Q(0.5), Q(0.99), missing);
        Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}]   {s.Profile} steady WAL: {r.WalPerSec:F2} WAL objects/s, {r.StorePuts} PUTs in {seconds:F1} s ({r.L0Objects} L0, {r.ManifestObjects} manifests){(missing > 0 ? $", {missing} MISSING" : "")}");
        return r;
    }
}
