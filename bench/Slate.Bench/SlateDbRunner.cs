using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Slate.Engine;

namespace Slate.Bench;

/// <summary>
/// SlateDB 0.12.1 (npm <c>@slatedb/uniffi</c>) driven by <c>bench/slatedb-bench.mjs</c> in a Node
/// child process. The run's value buffer and id orders are written to files that the script reads,
/// so SlateDB gets exactly the keys, values and orders of the other engines. Settings are taken
/// from Slate's quick options wherever SlateDB has the same knob. Every figure includes the Node
/// binding's per-operation crossing (that is what "SlateDB-via-Node" means in BENCHMARKS.md).
/// </summary>
public sealed class SlateDbRunner : IEngineRunner
{
    public const string BindingVersion = "0.12.1";

    public string Name => "SlateDB";

    /// <summary>A row only SlateDB has: what one awaited binding call costs with nothing to do.</summary>
    public const string Floor = "empty-db get (Node binding floor)";

    private static readonly Lazy<(string? Dir, string? Why)> Binding = new(FindOrInstall);

    /// <summary>Null when node and the binding are usable, otherwise why not (installs the binding with npm when missing).</summary>
    public static string? Unavailable() => Binding.Value.Why;

    public string Version
    {
        get
        {
            var (dir, why) = Binding.Value;
            if (dir is null) return $"unavailable: {why}";
            var node = Run("node", ["--version"], TimeSpan.FromSeconds(30)).Out.Trim();
            return $"@slatedb/uniffi {InstalledVersion(dir)} (SlateDB {BindingVersion} native library from the npm package) on Node {node}, from {dir}";
        }
    }

    private static SlateOptions SlateQuick(BenchConfig c) => new SlateRunner().Options(c);

    public string Describe(BenchConfig c)
    {
        var o = SlateQuick(c);
        return $"bench/slatedb-bench.mjs in a node child process, local-folder object store (file:// URL); Settings: " +
               $"flush_interval={o.FlushInterval?.TotalMilliseconds} ms, compression_codec=null, filter_bits_per_key={o.BloomBitsPerKey}, " +
               $"min_filter_keys=1000 (default), l0_sst_size_bytes={o.L0SstSizeBytes >> 20} MiB, l0_max_ssts={o.L0MaxSsts}, " +
               $"max_unflushed_bytes={o.MaxUnflushedBytes >> 20} MiB, wal_enabled=true, compactor_options=null, garbage_collector_options=null, " +
               "object_store_cache_options.root_folder=null (no disk cache); DbBuilder.with_sst_block_size(Block4Kib); " +
               $"block cache: SlateDB's default in-memory DbCache (the binding cannot size it; Slate's is {c.BlockCacheBytes >> 20} MiB blocks + " +
               $"{o.MetaCacheBytes >> 20} MiB metadata); load: put_with_options(await_durable=false); reads: get (default ReadOptions); " +
               "durable run: put_with_options(await_durable=true) (SlateDB 0.12.1 uploads the WAL on the flush_interval tick, " +
               "so a durable put waits for the next tick; Slate has FlushOnDurableWait=True). " +
               $"The extra row '{Floor}' (10,000 gets of a missing key before the load) shows the binding's own cost per call. Latency = process.hrtime.bigint() around each awaited binding call, " +
               "so the Node<->Rust crossing per op is included; RSS = the node process's own (process.memoryUsage().rss); " +
               "obj PUTs = files added under the database folder (one PUT each on the local store); GETs, allocations and GC pauses are not observable (—)";
    }

    public async Task RunAsync(Workload w, BenchConfig config, RssSampler rss, Action<PhaseResult> add)
    {
        var (dir, why) = Binding.Value;
        if (dir is null) throw new InvalidOperationException($"SlateDB cannot run: {why}");
        var script = Path.Combine(Report.RepoRoot(), "bench", "slatedb-bench.mjs");
        if (!File.Exists(script)) throw new FileNotFoundException($"the SlateDB benchmark script {script} is missing", script);

        var o = SlateQuick(config);
        if (o.BlockSize != 4096) throw new InvalidOperationException($"Slate's quick BlockSize is {o.BlockSize}; slatedb-bench.mjs only sets Block4Kib");
        var input = Path.Combine(config.Root, "slatedb-input");
        var root = Path.Combine(config.Root, "slatedb");
        Directory.CreateDirectory(input);
        Directory.CreateDirectory(root);
        WriteInputs(w, o, input);

        var psi = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { script, input, root, "db" }) psi.ArgumentList.Add(a);
        psi.Environment["SLATEDB_UNIFFI_DIR"] = dir;

        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start node");
        var err = new StringBuilder();
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (err) err.AppendLine(e.Data);
            Console.Error.WriteLine($"  {e.Data}");
        };
        p.BeginErrorReadLine();
        var stdout = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0)
        {
            string tail;
            lock (err) tail = err.ToString();
            throw new InvalidOperationException($"node slatedb-bench.mjs exited with {p.ExitCode}: {Clip(tail)}");
        }

        var line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .LastOrDefault(l => l.StartsWith('{'))
            ?? throw new InvalidOperationException($"slatedb-bench.mjs printed no JSON result: {Clip(stdout)}");
        using var doc = JsonDocument.Parse(line);
        var phases = doc.RootElement.GetProperty("phases");
        var names = new Dictionary<string, string>
        {
            ["load"] = EngineUtil.Load,
            ["flush"] = EngineUtil.Flush,
            ["read"] = EngineUtil.Read,
            ["durable"] = EngineUtil.DurableRun,
            ["floor"] = Floor,
        };
        var seen = new HashSet<string>();
        foreach (var ph in phases.EnumerateArray())
        {
            var name = ph.GetProperty("name").GetString() ?? "";
            if (!names.TryGetValue(name, out var workload))
                throw new InvalidOperationException($"slatedb-bench.mjs reported an unknown phase '{name}'");
            seen.Add(name);
            var ops = ph.GetProperty("ops").GetInt64();
            var seconds = ph.GetProperty("seconds").GetDouble();
            var rssMiB = ph.GetProperty("rss_max_bytes").GetDouble() / (1024.0 * 1024.0);
            var errors = ph.GetProperty("errors").GetInt64();
            var files = ph.GetProperty("files_added").GetInt64();
            if (name == "flush")
            {
                add(new PhaseResult(Name, workload, 1, seconds, 0, 0, 0, rssMiB, double.NaN, null, null, errors,
                    Timed: false, GcPauseSec: double.NaN));
                continue;
            }
            double? puts = name is "load" or "durable" ? files * 1000.0 / ops : null;
            add(new PhaseResult(Name, workload, ops, seconds,
                ph.GetProperty("p50_us").GetDouble(), ph.GetProperty("p99_us").GetDouble(), ph.GetProperty("p999_us").GetDouble(),
                rssMiB, double.NaN, puts, null, errors, GcPauseSec: double.NaN));
        }
        foreach (var n in names.Keys)
            if (!seen.Contains(n))
                throw new InvalidOperationException($"slatedb-bench.mjs reported no '{n}' phase");
    }

    /// <summary>config.json, buffer.bin and the id orders (little-endian u32) for slatedb-bench.mjs.</summary>
    private static void WriteInputs(Workload w, SlateOptions o, string input)
    {
        File.WriteAllBytes(Path.Combine(input, "buffer.bin"), w.Buffer);
        WriteIds(Path.Combine(input, "load.u32"), w.LoadOrder);
        WriteIds(Path.Combine(input, "reads.u32"), w.ReadIds);
        WriteIds(Path.Combine(input, "durable.u32"), w.DurableIds);
        // ids whose value offsets the script recomputes and compares before it starts
        var samples = new List<long> { 0, 1, 2, w.Records - 1, w.Records + w.Durable - 1, int.MaxValue };
        samples.AddRange(w.ReadIds.Take(32).Select(i => (long)i));
        samples.AddRange(w.DurableIds.Take(32).Select(i => (long)i));
        var cfg = new Dictionary<string, object>
        {
            ["records"] = w.Records,
            ["reads"] = w.Reads,
            ["durable"] = w.Durable,
            ["l0_sst_size_bytes"] = o.L0SstSizeBytes,
            ["l0_max_ssts"] = o.L0MaxSsts,
            ["flush_interval_ms"] = (long)(o.FlushInterval ?? TimeSpan.FromMilliseconds(100)).TotalMilliseconds,
            ["filter_bits_per_key"] = o.BloomBitsPerKey,
            ["max_unflushed_bytes"] = o.MaxUnflushedBytes,
            ["samples"] = samples.Select(id => new[] { id, Workload.ValueOffset(id) }).ToArray(),
        };
        File.WriteAllText(Path.Combine(input, "config.json"), JsonSerializer.Serialize(cfg));
    }

    private static void WriteIds(string file, int[] ids)
    {
        var bytes = new byte[ids.Length * 4];
        for (var i = 0; i < ids.Length; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), checked((uint)ids[i]));
        File.WriteAllBytes(file, bytes);
    }

    // ------------------------------------------------------------------ finding node and the binding

    private sealed record ProcResult(int Code, string Out, string Err);

    private static ProcResult Run(string file, IEnumerable<string> args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            try { p.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
            throw new TimeoutException($"{file} {string.Join(' ', args)}: no exit after {timeout.TotalSeconds:F0} s (killed)");
        }
        p.WaitForExit();
        return new ProcResult(p.ExitCode, o.Result, e.Result);
    }

    private static bool ToolWorks(string name)
    {
        try { return Run(name, ["--version"], TimeSpan.FromSeconds(60)).Code == 0; }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or TimeoutException) { return false; }
    }

    private static string? InstalledVersion(string dir)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "package.json")));
            var r = doc.RootElement;
            return r.GetProperty("name").GetString() == "@slatedb/uniffi" ? r.GetProperty("version").GetString() : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }

    private static string Clip(string s) => s.Length <= 600 ? s.Trim() : "…" + s[^600..].Trim();

    /// <summary>
    /// node from the PATH; the binding from $SLATEDB_UNIFFI_DIR when that holds version 0.12.1,
    /// else from the npm cache folder the interop tests use ($SLATE_NPM_CACHE, default
    /// ~/.cache/slate-npm), installed there with `npm install --prefix` (under the tests' lock file) when missing.
    /// </summary>
    private static (string? Dir, string? Why) FindOrInstall()
    {
        if (!ToolWorks("node")) return (null, "node is not on the PATH (Node.js 20+ is needed)");
        var env = Environment.GetEnvironmentVariable("SLATEDB_UNIFFI_DIR");
        if (!string.IsNullOrEmpty(env) && InstalledVersion(env) == BindingVersion) return (Path.GetFullPath(env), null);

        var cache = Environment.GetEnvironmentVariable("SLATE_NPM_CACHE") is { Length: > 0 } c
            ? c
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "slate-npm");
        var dir = Path.Combine(cache, "node_modules", "@slatedb", "uniffi");
        bool Ready() => InstalledVersion(dir) == BindingVersion;
        if (Ready()) return (dir, null);
        if (!ToolWorks("npm")) return (null, $"@slatedb/uniffi@{BindingVersion} is not installed in {cache} and npm is not on the PATH");

        Directory.CreateDirectory(cache);
        var deadline = DateTime.UtcNow.AddMinutes(10);
        FileStream? held = null;
        while (held is null)
        {
            try { held = new FileStream(Path.Combine(cache, ".slatedb-uniffi.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (DateTime.UtcNow < deadline) { Thread.Sleep(250); }
        }
        using (held)
        {
            if (Ready()) return (dir, null);
            Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] installing @slatedb/uniffi@{BindingVersion} into {cache} with npm");
            try
            {
                var r = Run("npm", ["install", "--prefix", cache, "--no-audit", "--no-fund", $"@slatedb/uniffi@{BindingVersion}"], TimeSpan.FromMinutes(5));
                if (r.Code == 0 && Ready()) return (dir, null);
                return (null, $"npm install @slatedb/uniffi@{BindingVersion} --prefix {cache} failed (exit {r.Code.ToString(CultureInfo.InvariantCulture)}): {Clip(r.Err + r.Out)}");
            }
            catch (TimeoutException e)
            {
                return (null, e.Message);
            }
        }
    }
}
