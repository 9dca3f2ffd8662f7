using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using System.Runtime.InteropServices;
using System.Text;
using Slate.Bench;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

if (args.Length > 0 && args[0] == "suite")
    return await SuiteMode.RunAsync(args[1..]);
if (args.Length > 0 && args[0] == Recovery.ChildMode)
    return await Recovery.ChildAsync(args[1..]);
if (args.Length > 0 && args[0] == "cloud")
    return await CloudMode.RunAsync(args);

if (args.Length == 0 || args[0] != "quick")
{
    Console.Error.WriteLine("""
        usage: dotnet run -c Release --project bench/Slate.Bench -- quick [options]
          --records N      records loaded (default 1000000)
          --reads N        point reads (default = records)
          --durable N      durable puts of the 1-writer run (default 2000)
          --engines LIST   comma-separated subset of slate,slatedb,rocksdb,zonetree (default all;
                           slatedb only when node and @slatedb/uniffi@0.12.1 are usable)
          --dir PATH       folder for the databases (default: a new temp folder, deleted afterwards)
          --keep           keep the database folders
        """);
    return 2;
}

int records = 1_000_000, durable = 2000;
int? reads = null;
string? dir = null;
var keep = false;
List<string>? engines = null;
for (var i = 1; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--records": records = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--reads": reads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--durable": durable = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--engines": engines = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).ToList(); break;
        case "--dir": dir = Next(); break;
        case "--keep": keep = true; break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}
if (records < 1 || durable < 1 || reads is < 1)
{
    Console.Error.WriteLine("--records, --reads and --durable must be positive");
    return 2;
}

string? skipped = null;
if (engines is null)
{
    engines = ["slate", "slatedb", "rocksdb", "zonetree"];
    if (SlateDbRunner.Unavailable() is { } why)
    {
        engines.Remove("slatedb");
        skipped = $"SlateDB left out of the default engines: {why}";
        Console.Error.WriteLine($"note: {skipped}");
    }
}

var started = DateTime.UtcNow;
var root = dir ?? Path.Combine(Path.GetTempPath(), $"slate-bench-{started:yyyyMMdd-HHmmss}-{Environment.ProcessId}");
Directory.CreateDirectory(root);
var config = new BenchConfig(records, reads ?? records, durable, 256L * 1024 * 1024, root);

var runners = new List<IEngineRunner>();
foreach (var e in engines)
{
    runners.Add(e switch
    {
        "slate" => new SlateRunner(),
        "slatedb" => new SlateDbRunner(),
        "rocksdb" => new RocksRunner(),
        "zonetree" => new ZoneTreeRunner(),
        _ => throw new ArgumentException($"unknown engine '{e}'"),
    });
}

var header = new StringBuilder();
void H(string line)
{
    header.AppendLine(line);
    Console.WriteLine(line);
}

H($"# Slate quick benchmark ({started:yyyy-MM-dd HH:mm:ss} UTC)");
H("");
H("## Machine and runtime");
H("");
foreach (var line in Report.MachineLines()) H(line);
H($"- Data folder: {root} ({Report.FileSystemOf(root)})");
H("");
H("## Workload");
H("");
H($"- Keys: 20 bytes = big-endian u64 id + 12 ASCII '0'. Values: 400 bytes cut from a 1 MiB seeded random buffer (seed {Workload.BufferSeed}), " +
  "offset = id * 2654435761 mod (1 MiB - 399).");
H($"- load: {records:N0} puts, one writer, ids in a seeded random permutation (seed {Workload.LoadSeed}; fillrandom, each key once), not durable; then flush to disk.");
H($"- point read: {config.Reads:N0} gets of uniform random loaded ids (seed {Workload.ReadSeed}, with replacement); every value is checked against what was written.");
H($"- durable put: {durable:N0} puts of new ids (seed {Workload.DurableSeed}), one writer, each waits until durable; every one is read back afterwards.");
H("- Latency: Stopwatch.GetTimestamp around each operation (one caller, so ops/s = 1 / mean latency).");
H("");
H("## Engines");
H("");
foreach (var r in runners)
    H($"- **{r.Name}** ({r.Version}): {r.Describe(config)}");
if (skipped is not null) H($"- {skipped}");
H("");

var w = new Workload(records, config.Reads, durable);
var results = new List<PhaseResult>();
var notes = new List<string>();
var failed = false;
using var rss = new RssSampler();

foreach (var r in runners)
{
    EngineUtil.Settle();
    var baseline = RssSampler.Current();
    var first = results.Count;
    Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {r.Name}: running (RSS at start {baseline / 1048576.0:F0} MiB)");
    try
    {
        await r.RunAsync(w, config, rss, res =>
        {
            results.Add(res);
            Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}]   {res.Workload}: {res.Seconds:F2} s" +
                (res.Timed ? $", {res.OpsPerSec:N0} ops/s, p50 {res.P50Us:F1} µs, p99 {res.P99Us:F1} µs" : "") +
                (res.Errors > 0 ? $", {res.Errors} WRONG" : ""));
        });
    }
    catch (Exception e)
    {
        var inner = e;
        while (inner is TypeInitializationException or AggregateException or System.Reflection.TargetInvocationException && inner.InnerException is not null)
            inner = inner.InnerException!;
        var msg = $"{r.Name} failed: {inner.GetType().FullName}: {inner.Message}";
        notes.Add(msg);
        Console.Error.WriteLine(msg);
        Console.Error.WriteLine(e);
        failed = true;
    }
    var mine = results.Skip(first).ToList();
    if (mine.Count > 0)
        notes.Add($"{r.Name}: max RSS over its phases {mine.Max(x => x.RssMaxMiB):F0} MiB (RSS before it started {baseline / 1048576.0:F0} MiB).");
    if (mine.Any(x => x.Errors > 0))
    {
        failed = true;
        notes.Add($"{r.Name}: CORRECTNESS FAILURE: " + string.Join(", ", mine.Where(x => x.Errors > 0).Select(x => $"{x.Errors} wrong/missing values in '{x.Workload}'")));
    }
}

using (var p = Process.GetCurrentProcess())
    notes.Add($"Process peak working set (all engines, whole run): {p.PeakWorkingSet64 / 1048576.0:F0} MiB.");

var body = Report.Render(results, notes);
Console.WriteLine(body);

var resultsDir = Path.Combine(Report.RepoRoot(), "bench", "results");
Directory.CreateDirectory(resultsDir);
var file = Path.Combine(resultsDir, $"quick-{started:yyyyMMdd-HHmmss}.md");
File.WriteAllText(file, header + body);
Console.WriteLine($"written to {file}");

if (!keep && dir is null)
{
    try { Directory.Delete(root, recursive: true); }
    catch (Exception e) { Console.Error.WriteLine($"could not delete {root}: {e.Message}"); }
}
return failed ? 1 : 0;
