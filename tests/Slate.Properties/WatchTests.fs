/// `slate watch`: one line per change of the LSM shape while a database compacts.
module Slate.Properties.WatchTests

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

/// Runs `slate watch` in-process; returns (exit code, stdout lines, stderr).
let private watch (dir: string) (args: string list) : int * string list * string =
    use out = new StringWriter()
    use err = new StringWriter()

    let argv =
        Array.ofList ([ "--store"; "file://" + dir; "--path"; "db"; "watch" ] @ args)

    use cts = new CancellationTokenSource(TimeSpan.FromMinutes 2.0)

    match Slate.Cli.Watch.tryRunWith argv out err cts.Token with
    | None -> failtest "watch was not dispatched"
    | Some code -> code, outputLines (out.ToString()), err.ToString()

/// A database with `l0s` L0 SSTs of 50 keys each and no sorted run.
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

let private json (line: string) = JsonDocument.Parse(line).RootElement

let allTests =
    testList
        "Watch"
        [ test "--count 1 prints the current shape: L0 count and bytes, no sorted runs" {
              let dir = tempDir "watch"

              try
                  withL0s dir 3
                  let code, lines, err = watch dir [ "--count"; "1" ]
                  Expect.equal code 0 ("exit code; stderr " + err)
                  Expect.equal lines.Length 1 "one line"
                  Expect.stringContains lines.Head "L0 3 (" "three L0 SSTs"
                  Expect.stringContains lines.Head "sorted runs 0" "no sorted run yet"

                  let code, lines, _ = watch dir [ "--count"; "1"; "--json" ]
                  Expect.equal code 0 "json exit code"
                  let j = json lines.Head
                  Expect.equal (j.GetProperty("l0").GetInt32()) 3 "l0"
                  Expect.isGreaterThan (j.GetProperty("l0_bytes").GetInt64()) 0L "l0 bytes"
                  Expect.equal (j.GetProperty("sorted_runs").GetArrayLength()) 0 "no runs"
              finally
                  cleanup dir
          }

          test "follows a standalone compactor until L0 is empty: the first line shows L0s, the last a sorted run" {
              let dir = tempDir "watch-compact"

              try
                  withL0s dir 5
                  let store = LocalFileObjectStore(dir) :> IObjectStore
                  use cts = new CancellationTokenSource()

                  let compactor =
                      Task.Run(fun () ->
                          Thread.Sleep 300 // the watch prints the uncompacted shape first

                          CompactorRunner.runAsync
                              store
                              "db"
                              { CompactorSettings.defaults with
                                  PollInterval = TimeSpan.FromMilliseconds 20.0
                                  MinCompactionSources = 2 }
                              options
                              cts.Token)

                  let code, lines, err =
                      watch dir [ "--interval"; "50ms"; "--until-l0"; "0"; "--json" ]

                  cts.Cancel()
                  compactor.Wait(TimeSpan.FromSeconds 30.0) |> ignore
                  Expect.equal code 0 ("exit code; stderr " + err)
                  Expect.isGreaterThanOrEqual lines.Length 2 "a line before and after compaction"
                  let first, last = json lines.Head, json (List.last lines)
                  Expect.equal (first.GetProperty("l0").GetInt32()) 5 "first line: five L0s"
                  Expect.equal (first.GetProperty("sorted_runs").GetArrayLength()) 0 "first line: no run"
                  Expect.equal (last.GetProperty("l0").GetInt32()) 0 "last line: L0 empty"
                  Expect.isGreaterThan (last.GetProperty("sorted_runs").GetArrayLength()) 0 "last line: a sorted run"

                  Expect.isGreaterThan
                      (last.GetProperty("compactor_epoch").GetUInt64())
                      (first.GetProperty("compactor_epoch").GetUInt64())
                      "the compactor fenced the manifest"

                  let ids =
                      lines |> List.map (fun l -> (json l).GetProperty("manifest_id").GetUInt64())

                  Expect.equal ids (List.sort ids |> List.distinct) "manifest ids rise line by line"
              finally
                  cleanup dir
          }

          test "a missing database exits 1 naming the manifest; bad options exit 2" {
              let dir = tempDir "watch-missing"

              try
                  let code, lines, err = watch dir [ "--count"; "1" ]
                  Expect.equal code 1 "missing database"
                  Expect.isEmpty lines "nothing printed"
                  Expect.stringContains err "failed to find latest manifest" "names the cause"

                  for bad in
                      [ [ "--interval"; "0" ]
                        [ "--count"; "-1" ]
                        [ "--until-l0"; "x" ]
                        [ "--bogus" ] ] do
                      let code, _, err = watch dir bad
                      Expect.equal code 2 (sprintf "%A is bad usage" bad)
                      Expect.stringContains err "usage" (sprintf "%A prints usage" bad)
              finally
                  cleanup dir
          }

          test "other commands are not taken" {
              use out = new StringWriter()
              use err = new StringWriter()

              let r =
                  Slate.Cli.Watch.tryRunWith
                      [| "--store"; "memory:///"; "--path"; "db"; "get"; "watch" |]
                      out
                      err
                      CancellationToken.None

              Expect.isNone r "`get watch` is a get of the key watch"
          } ]
