/// `slate gc` and `slate compactor` log to standard error at `--log-level` (stdout stays the
/// report, machine-readable with --json); `slate scan` draws its progress line only on a terminal.
module Slate.Properties.CliLogTests

open System
open System.IO
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Expecto
open Slate
open Slate.Engine
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng

/// A database at `db` with `l0s` L0 SSTs of 50 keys each (and so old manifests and WAL objects).
let private withL0s (dir: string) (l0s: int) : unit =
    let store = LocalFileObjectStore(dir) :> IObjectStore

    let db =
        openDb
            store
            "db"
            { options with
                L0SstSizeBytes = 1L <<< 20 }

    for i in 0 .. l0s - 1 do
        for k in 0..49 do
            put db (sprintf "k%03d" k) (sprintf "v%d-%s" i (String('x', 40))) |> ignore

        awaitU (db.FlushAsync(FlushKind.MemTable, ct))

    awaitU (db.CloseAsync(None, ct))

/// Runs `slate gc` in-process; returns (exit code, stdout lines, stderr).
let private gc (dir: string) (args: string list) : int * string list * string =
    use out = new StringWriter()
    use err = new StringWriter()

    let argv =
        Array.ofList ([ "--store"; "file://" + dir; "--path"; "db"; "gc" ] @ args)

    match Slate.Cli.GcCommand.tryRunWith argv out err CancellationToken.None with
    | None -> failtest "gc was not dispatched"
    | Some code -> code, outputLines (out.ToString()), err.ToString()

/// Log lines of a category in captured stderr.
let private logLines (category: string) (err: string) : string list =
    outputLines err |> List.filter (fun l -> l.Contains(": " + category + ": "))

/// Runs `slate compactor` in-process until `until` holds for its stdout lines (or 60 s), then
/// stops it as Ctrl-C would; returns (exit code, stdout lines, stderr).
let private compactor (dir: string) (args: string list) (until: string list -> bool) =
    let out = new StringWriter()
    let err = new StringWriter()
    use cts = new CancellationTokenSource()

    let argv =
        Array.ofList ([ "--store"; "file://" + dir; "--path"; "db"; "compactor" ] @ args)

    let run = Task.Run(fun () -> Slate.Cli.Program.runWith argv out err cts.Token)

    let lines () =
        lock out (fun () -> outputLines (out.ToString()))

    let sw = Diagnostics.Stopwatch.StartNew()

    while not (until (lines ()) || run.IsCompleted || sw.Elapsed > TimeSpan.FromSeconds 60.0) do
        Thread.Sleep 20

    cts.Cancel()
    let code = run.WaitAsync(TimeSpan.FromSeconds 30.0).GetAwaiter().GetResult()
    code, lines (), lock err (fun () -> err.ToString())

let allTests =
    testList
        "CLI logging"
        [ test "gc logs its pass to stderr at the default level; --json stdout is one JSON report" {
              let dir = tempDir "gc-log"

              try
                  withL0s dir 3
                  let code, lines, err = gc dir [ "--min-age"; "0"; "--json" ]
                  Expect.equal code 0 ("exit code; stderr " + err)
                  Expect.equal lines.Length 1 "one line on stdout"
                  let report = JsonDocument.Parse(lines.Head).RootElement
                  let manifests = report.GetProperty("directories")[0]
                  Expect.equal (manifests.GetProperty("directory").GetString()) "manifest" "the manifest directory"
                  let deleted = manifests.GetProperty("deleted").GetArrayLength()
                  Expect.isGreaterThan deleted 0 "old manifests were deleted"

                  match logLines "Slate.Gc" err with
                  | [ l ] ->
                      Expect.stringContains l "info: Slate.Gc: GC pass of db" "an information line of the pass"
                      Expect.stringContains l (sprintf "%d manifests" deleted) "with what it deleted"
                  | other -> failtestf "expected one Slate.Gc line, got %A (stderr %s)" other err
              finally
                  cleanup dir
          }

          test "the slate process: the console logger writes to stderr, stdout keeps the JSON report" {
              let dir = tempDir "gc-log-process"

              try
                  withL0s dir 3
                  let cli = Path.Combine(AppContext.BaseDirectory, "Slate.Cli.dll")
                  let psi = Diagnostics.ProcessStartInfo("dotnet")

                  for a in
                      [ cli
                        "--store"
                        "file://" + dir
                        "--path"
                        "db"
                        "gc"
                        "--min-age"
                        "0"
                        "--json" ] do
                      psi.ArgumentList.Add a

                  psi.RedirectStandardOutput <- true
                  psi.RedirectStandardError <- true
                  psi.UseShellExecute <- false
                  use p = Diagnostics.Process.Start psi
                  let stderr = p.StandardError.ReadToEndAsync()
                  let stdout = p.StandardOutput.ReadToEnd()
                  Expect.isTrue (p.WaitForExit 60_000) "the process ends"
                  let err = stderr.Result
                  Expect.equal p.ExitCode 0 ("exit code; stderr " + err)
                  let lines = outputLines stdout
                  Expect.equal lines.Length 1 ("one line on stdout: " + stdout)
                  let report = JsonDocument.Parse(lines.Head).RootElement
                  Expect.isFalse (report.GetProperty("dry_run").GetBoolean()) "the report"
                  Expect.stringContains err "info: Slate.Gc" "the console logger's line on stderr"
                  Expect.stringContains err "GC pass of db at manifest" "of the pass"
                  Expect.isFalse (stdout.Contains "Slate.Gc") "no log on stdout"
              finally
                  cleanup dir
          }

          test "gc --log-level filters: debug shows a quiet pass, warning and none hide it, a bad level is usage" {
              let dir = tempDir "gc-log-level"

              try
                  withL0s dir 1
                  // nothing is older than 5 minutes: the pass deletes nothing and logs at debug
                  let code, _, err = gc dir []
                  Expect.equal code 0 "exit code"
                  Expect.isEmpty (logLines "Slate.Gc" err) "a quiet pass is not logged at information"
                  let code, _, err = gc dir [ "--log-level"; "debug" ]
                  Expect.equal code 0 "exit code"
                  let l = logLines "Slate.Gc" err
                  Expect.equal l.Length 1 (sprintf "one debug line (stderr %s)" err)
                  Expect.stringContains l.Head "dbug: Slate.Gc: GC pass of db" "at debug"

                  for level in [ "warning"; "none" ] do
                      let code, _, err = gc dir [ "--min-age"; "0"; "--log-level"; level ]
                      Expect.equal code 0 "exit code"
                      Expect.equal err "" (sprintf "nothing on stderr at %s" level)

                  let code, lines, err = gc dir [ "--log-level"; "loud" ]
                  Expect.equal code 2 "usage error"
                  Expect.isEmpty lines "no report"
                  Expect.stringContains err "invalid --log-level 'loud'" "names the bad value"
              finally
                  cleanup dir
          }

          test "compactor logs planned and finished compactions to stderr; --json stdout stays JSON" {
              let dir = tempDir "compactor-log"

              try
                  withL0s dir 4

                  let code, lines, err =
                      compactor dir [ "--json" ] (fun ls -> ls |> List.exists (fun l -> l.Contains "\"job\""))

                  Expect.equal code 0 ("exit code; stderr " + err)
                  Expect.isNonEmpty lines "a finished job on stdout"

                  let jobs =
                      [ for l in lines ->
                            let j = JsonDocument.Parse(l).RootElement
                            Expect.equal (j.GetProperty("error").ValueKind) JsonValueKind.Null "the job succeeded"
                            j.GetProperty("job").GetString() ]

                  let log = logLines "Slate.Compactor" err
                  Expect.isTrue (log |> List.exists (fun l -> l.Contains "compactor of db started")) "start logged"

                  for job in jobs do
                      Expect.isTrue
                          (log
                           |> List.exists (fun l ->
                               l.Contains("info: Slate.Compactor: compaction " + job) && l.Contains "finished"))
                          (sprintf "job %s finished in the log:\n%s" job err)

                  Expect.isTrue (log |> List.exists (fun l -> l.Contains "stopped")) "the stop logged"
              finally
                  cleanup dir
          }

          test "compactor --log-level none logs nothing; a bad level is a usage error" {
              let dir = tempDir "compactor-log-none"

              try
                  withL0s dir 4

                  let code, lines, err =
                      compactor dir [ "--log-level"; "none" ] (fun ls ->
                          ls |> List.exists (fun l -> l.Contains " -> SR "))

                  Expect.equal code 0 "exit code"
                  Expect.isTrue (lines |> List.exists (fun l -> l.Contains " -> SR ")) "the job on stdout"
                  Expect.equal err "" "nothing on stderr"
                  let code, _, err = compactor dir [ "--log-level"; "chatty" ] (fun _ -> false)
                  Expect.equal code 2 "usage error"
                  Expect.stringContains err "invalid --log-level 'chatty'" "names the bad value"
              finally
                  cleanup dir
          }

          test "the progress line redraws in place and is erased; disabled it writes nothing" {
              use err = new StringWriter()
              let p = Slate.Cli.CliCommon.Progress(err, true, "scan:", "rows", 0L)
              p.Report 5L
              p.Report 1234L
              p.Finish()
              let s = err.ToString()
              Expect.equal s ("\rscan: 5 rows" + "\rscan: 1234 rows" + "\r" + String(' ', 15) + "\r") "drawn and erased"
              use quiet = new StringWriter()
              let q = Slate.Cli.CliCommon.Progress(quiet, false, "scan:", "rows", 0L)
              q.Report 5L
              q.Finish()
              Expect.equal (quiet.ToString()) "" "disabled"
              Expect.isFalse (Slate.Cli.CliCommon.onTerminal quiet) "a captured writer is no terminal"
          }

          test "slate scan writes no progress into a captured stderr" {
              let dir = tempDir "scan-progress"

              try
                  withL0s dir 2
                  use out = new StringWriter()
                  use err = new StringWriter()

                  let code =
                      Slate.Cli.Commands.run [| "--store"; "file://" + dir; "--path"; "db"; "scan" |] out err

                  Expect.equal code 0 "exit code"
                  Expect.equal (outputLines (out.ToString())).Length 51 "header and 50 keys"
                  Expect.equal (err.ToString()) "" "stderr untouched"
              finally
                  cleanup dir
          } ]
