using System.Diagnostics;
using System.Globalization;
using System.Text;
using Slate.Engine;

namespace Slate.Bench;

/// <summary>W8 idle requests of Slate.</summary>
public sealed record IdleResult(double Seconds, StoreMetrics Requests)
{
    public double PerMinute(long n) => n * 60.0 / Seconds;

    public double RequestsPerMinute => PerMinute(Requests.Requests);

    /// <summary>S3 Standard request prices (BENCHMARKS.md): PUT and LIST $0.005 / 1,000, GET and HEAD $0.0004 / 1,000, DELETE free; 30-day month.</summary>
    public double DollarsPerMonth
    {
        get
        {
            var perMin = (Requests.Puts + Requests.Lists) * 0.005 / 1000 + (Requests.Gets + Requests.GetRanges + Requests.Heads) * 0.0004 / 1000;
            return perMin * 60.0 / Seconds * 60 * 24 * 30;
        }
    }
}

/// <summary>W8 kill-and-reopen of Slate.</summary>
public sealed record RecoveryResult(int Acked, double ChildSeconds, double ReopenSec, StoreMetrics OpenRequests, long Missing, long ExtraPresent, long Probed);

/// <summary>W8: Slate only. Idle request rate, and reopen after a killed writer (none of its acknowledged writes may be lost).</summary>
public static class Recovery
{
    public const string ChildMode = "suite-w8-child";

    /// <summary>Ids of the child's puts: new ids after the loaded ones, in order.</summary>
    public static long ChildId(int records, long i) => records + i;

    /// <summary>
    /// The hidden child: opens Slate (defaults + common setup) at args[0], prints "ready", then
    /// writes durable puts one at a time, printing "ack &lt;i&gt;" after each is durable. The parent
    /// kills it; it stops by itself after args[3] puts (and a broken stdout pipe ends it too).
    /// </summary>
    public static async Task<int> ChildAsync(string[] args)
    {
        var dir = args[0];
        var records = int.Parse(args[1], CultureInfo.InvariantCulture);
        var cache = long.Parse(args[2], CultureInfo.InvariantCulture);
        var limit = long.Parse(args[3], CultureInfo.InvariantCulture);
        var w = new Workload(1, 1, 1);
        var db = await SlateSuiteDb.OpenAsync(dir, SuiteDbs.SlateOptions(cache));
        var client = db.Client;
        var key = new byte[Workload.KeySize];
        var stdout = Console.Out;
        stdout.WriteLine("ready");
        stdout.Flush();
        for (long i = 0; i < limit; i++)
        {
            var id = ChildId(records, i);
            Workload.WriteKey(key, id);
            var h = await client.PutAsync(key, w.Value(id));
            await h.AwaitDurableAsync();
            stdout.WriteLine($"ack {i}");
            stdout.Flush();
        }
        // not killed (the parent is gone or broken): stop on our own
        await db.DisposeAsync();
        return 3;
    }

    private static ProcessStartInfo Self(params string[] args)
    {
        var exe = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var psi = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(exe).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            psi.FileName = exe;
            psi.ArgumentList.Add(typeof(Recovery).Assembly.Location);
        }
        else
        {
            psi.FileName = exe;
        }
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    /// <summary>
    /// Loads <paramref name="records"/> keys (flushed), starts the child on the same folder, kills it
    /// (Process.Kill) right after its <paramref name="acks"/>-th acknowledgement, reopens and checks
    /// that every acknowledged write reads back.
    /// </summary>
    public static async Task<RecoveryResult> KillAndReopenAsync(string dir, int records, int acks, long cache, Workload w, Action<string> log)
    {
        await using (var db = await SlateSuiteDb.OpenAsync(dir, SuiteDbs.SlateOptions(cache)))
        {
            var order = Enumerable.Range(0, records).ToArray();
            for (var i = 0; i < records; i += Ingest.BatchSize)
                await db.WriteBatchAsync(order, i, Math.Min(Ingest.BatchSize, records - i), w);
            await db.Client.FlushAsync(FlushType.MemTable);
        }

        var psi = Self(ChildMode, dir, records.ToString(CultureInfo.InvariantCulture), cache.ToString(CultureInfo.InvariantCulture),
            (acks * 4L + 10_000).ToString(CultureInfo.InvariantCulture));
        var sw = Stopwatch.StartNew();
        using var child = Process.Start(psi) ?? throw new InvalidOperationException("could not start the child");
        var stderr = child.StandardError.ReadToEndAsync();
        var acked = -1L;
        var ready = false;
        var exitedEarly = false;
        double childSec;
        try
        {
            while (acked + 1 < acks)
            {
                var line = await child.StandardOutput.ReadLineAsync();
                if (line is null) break;
                if (line == "ready") { ready = true; sw.Restart(); }
                else if (line.StartsWith("ack ", StringComparison.Ordinal)) acked = long.Parse(line.AsSpan(4), CultureInfo.InvariantCulture);
            }
        }
        finally
        {
            // the kill under test, and the clean-up when anything above failed
            childSec = sw.Elapsed.TotalSeconds;
            exitedEarly = child.HasExited;
            if (!exitedEarly) child.Kill(entireProcessTree: true);
            await child.WaitForExitAsync();
        }
        var err = await stderr;
        if (!ready || acked + 1 < acks)
            throw new InvalidOperationException($"the W8 child stopped after {acked + 1} acknowledgements (exit code {(exitedEarly ? child.ExitCode : -1)}): {err}");
        log($"Slate W8: child killed after {acked + 1:N0} durable acknowledgements ({childSec:F2} s of writes); reopening");

        var local = new LocalFileObjectStore(dir);
        var metered = new MeteredObjectStore(local);
        var t0 = Stopwatch.GetTimestamp();
        var client = await SlateClient.OpenAsync(SlateSuiteDb.DbPath, ObjectStore.FromEngine(metered), SuiteDbs.SlateOptions(cache));
        var reopen = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var openReq = metered.Snapshot();
        long missing = 0, extra = 0, probed = 0;
        var key = new byte[Workload.KeySize];
        try
        {
            for (long i = 0; i <= acked; i++)
            {
                var id = ChildId(records, i);
                Workload.WriteKey(key, id);
                var v = await client.GetAsync(key);
                if (v is null || !w.IsValueOf(id, v)) missing++;
            }
            // writes in flight when the child died may or may not be there; a few past the last ack
            for (var i = acked + 1; i <= acked + 64; i++)
            {
                var id = ChildId(records, i);
                Workload.WriteKey(key, id);
                var v = await client.GetAsync(key);
                probed++;
                if (v is not null)
                {
                    if (!w.IsValueOf(id, v)) missing++;
                    else extra++;
                }
            }
            // the loaded data survived too
            for (var i = 0; i < Math.Min(records, 2000); i++)
            {
                Workload.WriteKey(key, i);
                var v = await client.GetAsync(key);
                if (v is null || !w.IsValueOf(i, v)) missing++;
            }
        }
        finally
        {
            await client.CloseAsync(new CloseOptions { FlushOnClose = null });
        }
        log($"Slate W8: reopened in {reopen:F3} s; {missing} acknowledged writes missing; {extra} unacknowledged present");
        return new RecoveryResult((int)(acked + 1), childSec, reopen, openReq, missing, extra, probed);
    }

    /// <summary>Opens the database with the default options and counts object-store requests for <paramref name="seconds"/> with no writes.</summary>
    public static async Task<IdleResult> IdleAsync(string dir, int seconds, long cache, Action<string> log)
    {
        var metered = new MeteredObjectStore(new LocalFileObjectStore(dir));
        var client = await SlateClient.OpenAsync(SlateSuiteDb.DbPath, ObjectStore.FromEngine(metered), SuiteDbs.SlateOptions(cache));
        try
        {
            var m0 = metered.Snapshot();
            var sw = Stopwatch.StartNew();
            log($"Slate W8: idle for {seconds} s");
            await Task.Delay(TimeSpan.FromSeconds(seconds));
            var m1 = metered.Snapshot();
            return new IdleResult(sw.Elapsed.TotalSeconds, StoreMetricsModule.diff(m1, m0));
        }
        finally
        {
            await client.CloseAsync(new CloseOptions { FlushOnClose = null });
        }
    }

    public static string Render(IdleResult? idle, RecoveryResult? rec)
    {
        var sb = new StringBuilder();
        sb.AppendLine("## W8 idle and recovery (Slate only)");
        sb.AppendLine();
        if (idle is not null)
        {
            var q = idle.Requests;
            sb.AppendLine("| idle s | requests/min | PUT/min | GET/min | GetRange/min | HEAD/min | LIST/min | DELETE/min | $/month idle (S3 Standard) |");
            sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            sb.AppendLine($"| {Fmt.N(idle.Seconds, "F1")} | {Fmt.N(idle.RequestsPerMinute, "F1")} | {Fmt.N(idle.PerMinute(q.Puts), "F1")} | {Fmt.N(idle.PerMinute(q.Gets), "F1")} | " +
                          $"{Fmt.N(idle.PerMinute(q.GetRanges), "F1")} | {Fmt.N(idle.PerMinute(q.Heads), "F1")} | {Fmt.N(idle.PerMinute(q.Lists), "F1")} | {Fmt.N(idle.PerMinute(q.Deletes), "F1")} | " +
                          $"{Fmt.N(idle.DollarsPerMonth, "F2")} |");
            sb.AppendLine();
            sb.AppendLine("- A writer opened with the default options (manifest poll 1 s, WAL flush tick 100 ms, embedded compactor poll 5 s, GC every 60 s) and no writes; " +
                          "counted from the end of the open. Dollars: PUT and LIST $0.005 / 1,000, GET/GetRange/HEAD $0.0004 / 1,000, DELETE free, 30-day month.");
            sb.AppendLine();
        }
        if (rec is not null)
        {
            var o = rec.OpenRequests;
            sb.AppendLine("| acknowledged durable writes | child write s | reopen s | requests during open (GET+range / LIST / PUT / HEAD) | acknowledged missing | unacknowledged present (of next 64) | check |");
            sb.AppendLine("|---:|---:|---:|---|---:|---:|---|");
            sb.AppendLine($"| {Fmt.N(rec.Acked)} | {Fmt.N(rec.ChildSeconds, "F2")} | {Fmt.N(rec.ReopenSec, "F3")} | {o.Gets + o.GetRanges} / {o.Lists} / {o.Puts} / {o.Heads} | " +
                          $"{rec.Missing} | {rec.ExtraPresent} | {(rec.Missing == 0 ? "ok" : "**ACKNOWLEDGED WRITES LOST**")} |");
            sb.AppendLine();
            sb.AppendLine("- A child process (this program, hidden mode) opens the database (defaults; a flushed load already in it), writes one durable put at a time and prints each " +
                          "acknowledgement; it is killed (Process.Kill) as soon as the N-th arrives, with its next put in flight. Reopen = SlateClient.OpenAsync in this process " +
                          "(fences the dead writer, replays the WAL). Every acknowledged write and a sample of the loaded keys are then read back. " +
                          "The child keeps writing until the kill lands, so writes it acknowledged after the N-th (not yet read here) show up as unacknowledged present.");
            sb.AppendLine();
        }
        return sb.ToString();
    }
}
