// Slate quick start: a database in a local folder (the embedded default).
// Writes 100,000 keys, awaits durability, reads them back, scans a range, reopens and verifies,
// and prints what it did with timings and the object layout.
//
//   dotnet run --project samples/QuickStart [-- --store file:///abs/dir | memory:/// ] [--keys N]

using System.Diagnostics;
using System.Text;
using Slate;

var storeUrl = ArgValue("--store");
var keys = int.Parse(ArgValue("--keys") ?? "100000");
string? folder = null;
if (storeUrl is null)
{
    folder = Path.Combine(Path.GetTempPath(), "slate-quickstart-" + Guid.NewGuid().ToString("N")[..8]);
    Directory.CreateDirectory(folder);
    storeUrl = new Uri(folder).AbsoluteUri;
}

const string DbPath = "quickstart";
var store = ObjectStore.Resolve(storeUrl);
Console.WriteLine($"store    {store}");
Console.WriteLine($"database {DbPath}");

static byte[] Key(int i) => Encoding.ASCII.GetBytes($"user/{i:D8}");
static byte[] Value(int i) => Encoding.ASCII.GetBytes($"{{\"id\":{i},\"name\":\"user-{i}\",\"score\":{i * 7 % 1000}}}");

var options = new SlateOptions { L0SstSizeBytes = 4L * 1024 * 1024 };
var sw = Stopwatch.StartNew();
await using (var db = await SlateClient.OpenAsync(DbPath, store, options))
{
    Step("open (create)", sw);

    WriteHandle? last = null;
    for (var i = 0; i < keys; i++)
        last = await db.PutAsync(Key(i), Value(i));
    Step($"put {keys:N0} keys", sw, keys);

    await last!.AwaitDurableAsync();
    Step($"await durability (seq {last.Seq})", sw);

    for (var i = 0; i < keys; i++)
    {
        var v = await db.GetAsync(Key(i));
        if (v is null || !v.AsSpan().SequenceEqual(Value(i)))
            throw new InvalidOperationException($"key {i} read back wrong");
    }
    Step($"get {keys:N0} keys (all verified)", sw, keys);

    var deleted = 0;
    for (var i = 0; i < keys; i += 10)
    {
        await db.DeleteAsync(Key(i));
        deleted++;
    }
    Step($"delete every 10th key ({deleted:N0})", sw, deleted);

    var range = KeyRange.Create(Key(1000), Key(2000));
    var count = 0;
    await foreach (var kv in db.Scan(range))
    {
        if (count == 0) Console.WriteLine($"         first in range: {kv.KeyString} = {kv.ValueString}");
        count++;
    }
    Step($"scan [user/00001000, user/00002000): {count} live keys", sw);
    if (count != 900) throw new InvalidOperationException($"expected 900 keys in the range, got {count}");

    await db.CloseAsync();
    Step("close (memtable flushed to L0)", sw);
}

await using (var db = await SlateClient.OpenAsync(DbPath, store, options))
{
    Step("reopen", sw);
    var present = 0;
    for (var i = 0; i < keys; i++)
    {
        var v = await db.GetAsync(Key(i));
        var shouldExist = i % 10 != 0;
        if ((v is not null) != shouldExist)
            throw new InvalidOperationException($"key {i}: expected {(shouldExist ? "present" : "deleted")} after reopen");
        if (v is not null) present++;
    }
    Step($"verify after reopen: {present:N0} present, {keys - present:N0} deleted", sw, keys);
    Console.WriteLine($"         status: durable seq {db.Status.DurableSeq}, manifest {db.Status.ManifestId}");
}

if (folder is not null)
{
    Console.WriteLine();
    Console.WriteLine("object layout:");
    var root = Path.Combine(folder, DbPath);
    foreach (var dir in Directory.GetDirectories(root).OrderBy(d => d))
    {
        var files = Directory.GetFiles(dir);
        var bytes = files.Sum(f => new FileInfo(f).Length);
        Console.WriteLine($"  {Path.GetFileName(dir) + "/",-13} {files.Length,4} objects {bytes,12:N0} bytes");
    }
    Console.WriteLine($"(data left in {folder}; inspect it with: dotnet run --project src/Slate.Cli -- inspect --store {new Uri(folder).AbsoluteUri} --path {DbPath})");
}

static void Step(string what, Stopwatch sw, int ops = 0)
{
    var ms = sw.Elapsed.TotalMilliseconds;
    var rate = ops > 0 ? $"  ({ops / sw.Elapsed.TotalSeconds:N0} ops/s)" : "";
    Console.WriteLine($"{ms,9:N1} ms  {what}{rate}");
    sw.Restart();
}

string? ArgValue(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
