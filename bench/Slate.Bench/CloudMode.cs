using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Slate.Engine;

namespace Slate.Bench;

/// <summary>One row of the bars table of BENCHMARKS.md ("Where the bars are").</summary>
public sealed record BarRow(string Check, string Measured, string Bar, string Verdict, string? Note = null);

/// <summary>
/// The <c>cloud</c> mode: Slate alone over the local-filesystem store behind a latency profile
/// (BENCHMARKS.md "Object-storage latency profiles") and a request meter, running W1, W3, W4, W5,
/// W7 and the steady-WAL check, then the bars table.
/// </summary>
public static class CloudMode
{
    public const string Usage = """
        usage: dotnet run -c Release --project bench/Slate.Bench -- cloud [options]
          --records N       records loaded once (default 1000000)
          --profiles LIST   comma-separated subset of local,s3-standard,s3-express (default all)
          --writers LIST    W3 writer counts (default 1,4,16,64)
          --reads N         point reads per W4 pass (default 1000; W5 uses max(2000, N))
          --scans N         10-row scans of W7 (default reads / 5)
          --durable N       durable puts per W3 writer count (default 300, at least 10 per writer)
          --wal-seconds S   length of the steady-WAL phase (default 10)
          --wal-rate N      puts per second during it (default 2000)
          --dir PATH        folder for the databases (default: a new temp folder, deleted afterwards)
          --keep            keep the database folder
          --json            print the results as JSON on stdout (and write a .json beside the .md)
        """;

    private static LatencyProfile ProfileOf(string name) => name switch
    {
        "local" => LatencyProfileModule.local,
        "s3-standard" => LatencyProfileModule.s3Standard,
        "s3-express" => LatencyProfileModule.s3Express,
        _ => throw new ArgumentException($"unknown profile '{name}' (local, s3-standard, s3-express)"),
    };

    /// <summary>Dollars per PUT of the profile's storage class (BENCHMARKS.md prices); null for local.</summary>
    private static double? PutPrice(string profile) => profile switch
    {
        "s3-standard" => 0.005 / 1000,
        "s3-express" => 0.00113 / 1000,
        _ => null,
    };

    public static async Task<int> RunAsync(string[] args)
    {
        int records = 1_000_000, reads = 1000, durable = 300, walRate = 2000;
        int? scans = null;
        double walSeconds = 10;
        var profiles = new List<string> { "local", "s3-standard", "s3-express" };
        var writers = new List<int> { 1, 4, 16, 64 };
        string? dir = null;
        bool keep = false, json = false;
        try
        {
            for (var i = 1; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
                switch (args[i])
                {
                    case "--records": records = Int(); break;
                    case "--reads": reads = Int(); break;
                    case "--scans": scans = Int(); break;
                    case "--durable": durable = Int(); break;
                    case "--wal-seconds": walSeconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--wal-rate": walRate = Int(); break;
                    case "--profiles": profiles = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).ToList(); break;
                    case "--writers": writers = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToList(); break;
                    case "--dir": dir = Next(); break;
                    case "--keep": keep = true; break;
                    case "--json": json = true; break;
                    default: throw new ArgumentException($"unknown option {args[i]}");
                }
            }
            foreach (var p in profiles) ProfileOf(p);
            if (records < 11 || reads < 1 || durable < 1 || walRate < 1 || walSeconds <= 0 || scans is < 1 || writers.Count == 0 || writers.Any(x => x < 1) || profiles.Count == 0)
                throw new ArgumentException("--records must be at least 11; --reads, --scans, --durable, --wal-rate, --wal-seconds and every writer count must be positive; lists must not be empty");
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine(Usage);
            return 2;
        }

        var started = DateTime.UtcNow;
        var root = dir ?? Path.Combine(Path.GetTempPath(), $"slate-cloud-{started:yyyyMMdd-HHmmss}-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        var config = new CloudConfig(records, reads, scans ?? Math.Max(1, reads / 5), durable, writers, walSeconds, walRate, root);

        var header = new StringBuilder();
        void H(string line)
        {
            header.AppendLine(line);
            if (!json) Console.WriteLine(line);
            else Console.Error.WriteLine(line);
        }

        H($"# Slate cloud benchmark ({started:yyyy-MM-dd HH:mm:ss} UTC)");
        H("");
        H("## Machine and runtime");
        H("");
        foreach (var line in Report.MachineLines()) H(line);
        H($"- Engine: Slate.CSharp {EngineUtil.AssemblyVersion(typeof(SlateClient))} (peers cannot run on object storage; Slate only)");
        H($"- Data folder: {root} ({Report.FileSystemOf(root)})");
        H("");
        H("## Setup");
        H("");
        H("- Store stack per profile: LocalFileObjectStore -> LatencyObjectStore (profile, seeded Random) -> MeteredObjectStore; " +
          "the engine adds its retrying store on top, so counts are requests that reached the \"bucket\".");
        foreach (var p in profiles)
        {
            var lp = ProfileOf(p);
            string T(LatencyPoint[] t) => string.Join("/", t.Select(x => x.Milliseconds.ToString("0.#", CultureInfo.InvariantCulture)));
            H($"  - `{p}`: PUT/DELETE/LIST ms at q0/50/90/99/100 {T(lp.Put)}, GET/HEAD {T(lp.Get)}, " +
              $"{(double.IsPositiveInfinity(lp.BytesPerSecond) ? "no transfer time" : $"{lp.BytesPerSecond / 1e6:F0} MB/s per request")}" +
              $"{(PutPrice(p) is { } price ? $"; ${price * 1000:0.#####} per 1,000 PUTs" : "")}");
        }
        H($"- Keys/values as BENCHMARKS.md: 20-byte keys, 400-byte incompressible values (seed {Workload.BufferSeed}); {records:N0} records.");
        H("- W1 load runs ONCE, on the `local` profile (no delays), fillrandom (seed 1) in WriteBatches of 1,024, not durable; then a memtable flush " +
          "and the embedded compactor (poll 500 ms, size-tiered 4..8 sources, ratio 4) until the size-tiered planner proposes nothing. " +
          "Every profile then reopens the same files under its latency store for the reads.");
        H($"- Read clients: BlockCacheBytes = 10% of the SST bytes after the load, MetaCacheBytes 128 MiB, 4 KiB blocks, bloom 10 bits/key, no compression, " +
          "no compactor, no GC. One caller per read phase (ops/s = 1 / mean latency).");
        H($"- W5: {Math.Max(2000, reads):N0} gets of keys that sort between loaded keys (last byte '1'), first on a fresh client (loads SST index + filters), " +
          "then again with filters cached; then keys beyond the last key.");
        H($"- W4: {reads:N0} gets uniform (seed {Workload.ReadSeed}) and zipf 0.99 (seed {CloudWorkloads.ZipfSeed}); cold = block cache empty (fresh client whose " +
          "SST metadata was loaded by a missing-key pass), hot = the same ids again on that client. Every value is checked.");
        H($"- W7: {config.Scans:N0} scans of 10 rows from uniform starts (seed {CloudWorkloads.ScanSeed}), fresh client, ScanOptions defaults; one full scan with " +
          "8 MiB read-ahead and 4 fetch tasks. Every row is checked.");
        H($"- W3: durable puts (each awaits durability) into a fresh database per profile, FlushInterval 100 ms, FlushOnDurableWait = true; writers {string.Join(", ", writers)}; " +
          $"max({durable}, 10 x writers) puts per writer count; every acknowledged put is read back with Durability = Remote.");
        H($"- Steady WAL: one writer paced at {walRate:N0} non-durable puts/s for {walSeconds:F0} s into a fresh database, FlushInterval 100 ms; WAL, L0 and manifest " +
          "objects counted by listing the local folder before and after; every put is read back after a final WAL flush.");
        H("");

        var w = new Workload(records, 1, 1);
        var rows = new List<CloudRow>();
        var walRows = new List<WalSteady>();
        var notes = new List<string>();
        var failed = false;
        using var rss = new RssSampler();
        long dataBytes;
        string shape;

        var loadStore = new CloudStore(root, LatencyProfileModule.local, 100);
        Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] load: {records:N0} records on the local profile");
        var m0 = loadStore.Metered.Snapshot();
        var load = await CloudWorkloads.LoadAsync(loadStore, w, config, rss);
        var m1 = StoreMetricsModule.diff(loadStore.Metered.Snapshot(), m0);
        rows.AddRange(load.Rows);
        dataBytes = load.DataBytes;
        shape = load.Shape;
        var logical = (double)records * (Workload.KeySize + Workload.ValueSize);
        notes.Add($"W1: after the load: {shape}; SST bytes {dataBytes / 1048576.0:F1} MiB; space amplification {dataBytes / logical:F2} " +
                  $"(SST bytes / {logical / 1048576.0:F1} MiB of keys + values); write amplification {m1.BytesWritten / logical:F2} " +
                  $"(bytes PUT incl. WAL, L0, compaction and manifests / logical); {m1.Puts:N0} PUTs, {m1.Gets + m1.GetRanges:N0} GETs.");
        foreach (var r in load.Rows)
            Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}]   {r.R.Workload}: {r.R.Seconds:F1} s" + (r.R.Timed ? $", {r.R.OpsPerSec:N0} records/s" : ""));
        Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}]   shape: {shape}");
        var blockCache = Math.Max(4096, dataBytes / 10);

        var seed = 1000;
        foreach (var p in profiles)
        {
            var s = new CloudStore(root, ProfileOf(p), seed++);
            Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] profile {p}");
            try
            {
                rows.AddRange(await CloudWorkloads.ReadsAsync(s, w, config, blockCache, rss));
                rows.AddRange(await CloudWorkloads.DurableAsync(s, w, config, rss));
                walRows.Add(await CloudWorkloads.SteadyWalAsync(s, w, config));
            }
            catch (Exception e)
            {
                notes.Add($"{p}: FAILED: {e.GetType().FullName}: {e.Message}");
                Console.Error.WriteLine(e);
                failed = true;
            }
        }

        foreach (var r in rows.Where(r => r.R.Errors > 0))
        {
            failed = true;
            notes.Add($"CORRECTNESS FAILURE: {r.Profile} '{r.R.Workload}': {r.R.Errors} wrong or missing values");
        }
        foreach (var r in walRows.Where(r => r.Errors > 0))
        {
            failed = true;
            notes.Add($"CORRECTNESS FAILURE: {r.Profile} steady WAL: {r.Errors} puts missing after the final flush");
        }
        long peak;
        using (var proc = Process.GetCurrentProcess()) peak = proc.PeakWorkingSet64;
        notes.Add($"Process peak working set (whole run, load included): {peak / 1048576.0:F0} MiB.");

        var bars = Bars(rows, walRows, profiles, blockCache, peak);
        var body = Render(rows, walRows, bars, notes);
        if (!json) Console.WriteLine(body);

        var resultsDir = Path.Combine(Report.RepoRoot(), "bench", "results");
        Directory.CreateDirectory(resultsDir);
        var file = Path.Combine(resultsDir, $"cloud-{started:yyyyMMdd-HHmmss}.md");
        File.WriteAllText(file, header + body);
        if (json)
        {
            var doc = JsonSerializer.Serialize(new
            {
                started,
                records,
                profiles,
                writers,
                dataBytes,
                shape,
                blockCacheBytes = blockCache,
                rows,
                steadyWal = walRows,
                bars,
                notes,
            }, new JsonSerializerOptions { WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull });
            Console.WriteLine(doc);
            File.WriteAllText(Path.ChangeExtension(file, ".json"), doc);
        }
        Console.Error.WriteLine($"written to {file}");

        if (!keep && dir is null)
        {
            try { Directory.Delete(root, recursive: true); }
            catch (Exception e) { Console.Error.WriteLine($"could not delete {root}: {e.Message}"); }
        }
        return failed ? 1 : 0;
    }

    private static string F(double? v, string fmt) => v is { } x ? x.ToString(fmt, CultureInfo.InvariantCulture) : "—";

    private static string Ms(double us) => (us / 1000).ToString(us >= 100_000 ? "F0" : "F2", CultureInfo.InvariantCulture);

    private static List<BarRow> Bars(List<CloudRow> rows, List<WalSteady> wal, List<string> profiles, long blockCache, long peak)
    {
        var bars = new List<BarRow>();
        var main = new[] { "s3-standard", "s3-express" }.FirstOrDefault(profiles.Contains) ?? profiles[0];
        CloudRow? Find(string profile, string workload) => rows.FirstOrDefault(r => r.Profile == profile && r.R.Workload == workload);
        string V(bool ok) => ok ? "PASS" : "MISS";
        var lp = ProfileOf(main);
        var getP50 = LatencyProfileModule.quantile(lp.Get, 0.5);
        var putP50 = LatencyProfileModule.quantile(lp.Put, 0.5);
        var coldNote = main == "s3-standard" ? null : $"s3-standard not run; measured on {main}";

        if (Find(main, "W4 point read uniform, cold") is { } cold)
        {
            bars.Add(new BarRow($"GETs per uncached point read (W4 cold uniform, {main})", F(cold.GetsPerOp, "F3"), "<= 1.0", V(cold.GetsPerOp <= 1.0), coldNote));
            var p50 = cold.R.P50Us / 1000;
            bars.Add(new BarRow($"Uncached read latency (W4 cold uniform, {main})", $"p50 {p50:F2} ms", $"p50 <= {getP50 + 1:F0} ms (GET p50 {getP50:F0} + 1)", V(p50 <= getP50 + 1), coldNote));
            if (rows.FirstOrDefault(r => r.Profile == main && r.Id == "cal") is { } cal)
            {
                var raw = cal.R.P50Us / 1000;
                bars.Add(new BarRow($"Uncached read latency over the simulated bucket's own GET (W4 cold p50 - raw 4 KiB GET p50, {main}, same run)",
                    $"{p50 - raw:F2} ms ({p50:F2} - {raw:F2})", "<= 1 ms", V(p50 - raw <= 1),
                    "the bar above compares with the table's p50; this one removes the simulator's timer slack and the local read measured in the same run"));
            }
        }
        if (Find(main, "W5 missing keys inside the key range, filters cached") is { } inRange)
            bars.Add(new BarRow($"GETs per missing-key read (W5, keys inside the key range, filters cached, {main})", F(inRange.GetsPerOp, "F4"), "<= 0.005",
                V(inRange.GetsPerOp <= 0.005), "10 bits/key with 6 probes (the SlateDB format) gives a ~0.84% false-positive rate per SST probed"));
        if (Find(main, "W5 missing keys beyond the last key") is { } beyond)
            bars.Add(new BarRow($"GETs per missing-key read (W5, keys beyond the last key, {main})", F(beyond.GetsPerOp, "F4"), "<= 0.005", V(beyond.GetsPerOp <= 0.005)));
        if (Find(main, "W7 10-row scan from a random start, cold") is { } scan)
            bars.Add(new BarRow($"GETs per 10-row scan (W7 cold, {main})", F(scan.GetsPerOp, "F2"), "< 6", V(scan.GetsPerOp < 6), coldNote));
        foreach (var x in wal)
        {
            var allowed = 10.5 + x.L0Objects / x.Seconds;
            var measured = x.NonL0PutsPerSec;
            bars.Add(new BarRow($"WAL PUTs per second, steady writing, 100 ms flush interval ({x.Profile})",
                $"{measured:F2}/s ({x.WalPerSec:F2} WAL objects/s)", $"<= 10.5/s + 1 per L0 ({allowed:F2}/s)", V(measured <= allowed),
                "PUTs counted by the meter minus L0 SSTs and manifests created"));
        }
        if (Find(main, "W3 durable put, 1 writer") is { } d1)
        {
            var p50 = d1.R.P50Us / 1000;
            var floor = Find("local", "W3 durable put, 1 writer");
            var floorNote = floor is null ? "" : $"includes the local file system's own create (write + fsync + link; local profile p50 {floor.R.P50Us / 1000:F2} ms)";
            bars.Add(new BarRow($"Durable write latency (W3, {main}, 1 writer)", $"p50 {p50:F2} ms", $"p50 <= {2 * putP50:F0} ms (2 x PUT p50)", V(p50 <= 2 * putP50),
                string.Join("; ", new[] { coldNote, floorNote }.Where(x => !string.IsNullOrEmpty(x)))));
        }
        if (wal.FirstOrDefault(x => x.Profile == "local") is { } lw)
            bars.Add(new BarRow("Non-durable put (local)", $"p50 {lw.PutP50Us:F1} µs, p99 {lw.PutP99Us:F1} µs", "p50 <= 20 µs, p99 <= 100 µs",
                V(lw.PutP50Us <= 20 && lw.PutP99Us <= 100), "from the steady-WAL phase: one paced writer; W2 proper (16 writers) is not part of this mode"));
        var meta = 128L * 1024 * 1024;
        var unflushed = 1024L * 1024 * 1024;
        var memBar = (blockCache + meta + unflushed) * 1.25;
        bars.Add(new BarRow("Memory (process peak RSS, whole run)", $"{peak / 1048576.0:F0} MiB", $"<= (caches + max_unflushed_bytes) x 1.25 = {memBar / 1048576.0:F0} MiB",
            V(peak <= memBar), "read clients' caches (block 10% of data + meta 128 MiB) and the default 1 GiB MaxUnflushedBytes; one client open at a time"));
        bars.Add(new BarRow("Against the peers (same run)", "not measured", "Slate >= SlateDB-via-Node; within 2x of RocksDB on W2/W4 hot", "n/a",
            "peers cannot run on object storage; see the quick mode"));
        return bars;
    }

    private static string Render(List<CloudRow> rows, List<WalSteady> wal, List<BarRow> bars, List<string> notes)
    {
        var sb = new StringBuilder();
        void L(string s = "") => sb.AppendLine(s);

        L("## W1 load (local profile, once)");
        L();
        L("| Step | Records | Seconds | Records/s | MiB/s | Store PUTs | Store GETs | Note |");
        L("|---|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in rows.Where(r => r.Id == "W1"))
        {
            var puts = r.R.Timed ? r.R.StorePutsPer1k * r.R.Ops / 1000 : r.R.StorePutsPer1k;
            var gets = r.R.Timed ? null : r.R.StoreGetsPer1k;
            L($"| {r.R.Workload} | {(r.R.Timed ? r.R.Ops.ToString("N0", CultureInfo.InvariantCulture) : "")} | {r.R.Seconds:F1} | " +
              $"{(r.R.Timed ? r.R.OpsPerSec.ToString("N0", CultureInfo.InvariantCulture) : "")} | " +
              $"{(r.R.Timed ? (r.R.OpsPerSec * (Workload.KeySize + Workload.ValueSize) / 1048576.0).ToString("F1", CultureInfo.InvariantCulture) : "")} | " +
              $"{F(puts, "N0")} | {F(gets, "N0")} | {r.Note} |");
        }
        L();

        L("## W3 durable writes");
        L();
        L("| Profile | Writers | Puts | Ops/s | p50 ms | p99 ms | PUTs per 1,000 writes | $ per million writes | Wrong |");
        L("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows.Where(r => r.Id == "W3"))
        {
            var writersText = r.R.Workload.Split(',')[1].Trim().Split(' ')[0];
            var dollars = PutPrice(r.Profile) is { } price && r.PutsPerOp is { } ppo ? ppo * 1e6 * price : (double?)null;
            L($"| {r.Profile} | {writersText} | {r.R.Ops:N0} | {r.R.OpsPerSec:N0} | {Ms(r.R.P50Us)} | {Ms(r.R.P99Us)} | {F(r.R.StorePutsPer1k, "F0")} | {F(dollars, "F2")} | {r.R.Errors} |");
        }
        L();

        L("## W4 point reads and W5 missing keys");
        L();
        L("GETs are of SST objects (`compacted/`); \"other GETs\" are the rest in the same interval (the open client's manifest poll, once a second).");
        L();
        L("| Profile | Workload | Reads | Ops/s | p50 ms | p99 ms | SST GETs per 1,000 reads | Other GETs per 1,000 reads | Wrong | Note |");
        L("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in rows.Where(r => r.Id is "cal" or "W4" or "W5"))
            L($"| {r.Profile} | {r.R.Workload} | {r.R.Ops:N0} | {r.R.OpsPerSec:N0} | {Ms(r.R.P50Us)} | {Ms(r.R.P99Us)} | {F(r.R.StoreGetsPer1k, "F1")} | {F(r.OtherGetsPer1k, "F1")} | {r.R.Errors} | {r.Note} |");
        L();

        L("## W7 scans");
        L();
        L("| Profile | Workload | Ops | Scans/s or rows/s | p50 ms | p99 ms | SST GETs per scan (per 1,000 rows for the full scan) | Other GETs per 1,000 scans | Wrong | Note |");
        L("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in rows.Where(r => r.Id == "W7"))
        {
            var full = r.R.Workload.StartsWith("W7 full", StringComparison.Ordinal);
            L($"| {r.Profile} | {r.R.Workload} | {r.R.Ops:N0} | {r.R.OpsPerSec:N0} | {(full ? "" : Ms(r.R.P50Us))} | {(full ? "" : Ms(r.R.P99Us))} | " +
              $"{(full ? F(r.R.StoreGetsPer1k, "F2") : F(r.GetsPerOp, "F2"))} | {F(r.OtherGetsPer1k, "F1")} | {r.R.Errors} | {r.Note} |");
        }
        L();

        L("## Steady WAL (100 ms flush interval)");
        L();
        L("| Profile | Seconds | Puts | WAL objects | WAL objects/s | L0 SSTs | Manifests | All PUTs | Non-L0 PUTs/s | Put p50 µs | Put p99 µs | Missing |");
        L("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var x in wal)
            L($"| {x.Profile} | {x.Seconds:F1} | {x.Puts:N0} | {x.WalObjects} | {x.WalPerSec:F2} | {x.L0Objects} | {x.ManifestObjects} | {x.StorePuts} | {x.NonL0PutsPerSec:F2} | {x.PutP50Us:F1} | {x.PutP99Us:F1} | {x.Errors} |");
        L();

        L("## Where the bars are");
        L();
        L("| Check | Measured | Bar | Verdict | Note |");
        L("|---|---|---|---|---|");
        foreach (var b in bars)
            L($"| {b.Check} | {b.Measured} | {b.Bar} | {b.Verdict} | {b.Note} |");
        L();

        if (notes.Count > 0)
        {
            L("## Notes");
            L();
            foreach (var n in notes) L($"- {n}");
            L();
        }
        return sb.ToString();
    }
}
