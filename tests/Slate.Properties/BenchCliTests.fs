/// `slate bench`: Slate's workloads through the public client, on a fresh path only.
module Slate.Properties.BenchCliTests

open System
open System.IO
open System.Text.Json
open System.Threading
open Expecto
open Slate
open Slate.Engine
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng

let private bench (dir: string) (path: string) (args: string list) : int * string list * string =
    use out = new StringWriter()
    use err = new StringWriter()

    let argv =
        Array.ofList ([ "--store"; "file://" + dir; "--path"; path; "bench" ] @ args)

    match Slate.Cli.Bench.tryRunWith argv out err CancellationToken.None with
    | None -> failtest "bench was not dispatched"
    | Some code -> code, outputLines (out.ToString()), err.ToString()

let allTests =
    testList
        "Bench CLI"
        [ test "a small run reports four phases with their operation counts and leaves every key readable" {
              let dir = tempDir "bench-cli"

              try
                  let code, lines, err =
                      bench dir "b" [ "--records"; "1500"; "--reads"; "700"; "--durable"; "20"; "--json" ]

                  Expect.equal code 0 ("exit code; stderr " + err)

                  let phases =
                      lines
                      |> List.map (fun l ->
                          let j = JsonDocument.Parse(l).RootElement
                          j.GetProperty("phase").GetString(), j.GetProperty("ops").GetInt32())

                  Expect.equal
                      phases
                      [ "load", 1500; "reads", 700; "durable puts", 20; "scan", 1520 ]
                      "phases and counts"

                  let store = LocalFileObjectStore(dir) :> IObjectStore
                  let db = openDb store "b" options
                  Expect.equal (scanAll db readOpts).Length 1520 "every written key is in the database"
                  awaitU (db.CloseAsync(None, ct))
              finally
                  cleanup dir
          }

          test "an existing database is refused and left untouched; bad options exit 2" {
              let dir = tempDir "bench-cli-existing"

              try
                  let store = LocalFileObjectStore(dir) :> IObjectStore
                  let db = openDb store "data" options
                  put db "precious" "value" |> ignore
                  awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
                  let before = Directory.GetFiles(dir, "*", SearchOption.AllDirectories) |> Array.sort

                  let code, lines, err = bench dir "data" [ "--records"; "10" ]
                  Expect.equal code 1 "refused"
                  Expect.isEmpty lines "no results"
                  Expect.stringContains err "already holds a database" "names the cause"
                  Expect.stringContains err "data" "names the path"

                  Expect.equal
                      (Directory.GetFiles(dir, "*", SearchOption.AllDirectories) |> Array.sort)
                      before
                      "no object written"

                  for bad in
                      [ [ "--records"; "0" ]
                        [ "--durable"; "x" ]
                        [ "--value-size"; "-1" ]
                        [ "--nope" ] ] do
                      let code, _, err = bench dir "fresh" bad
                      Expect.equal code 2 (sprintf "%A is bad usage" bad)
                      Expect.stringContains err "usage" (sprintf "%A prints usage" bad)
              finally
                  cleanup dir
          } ]
