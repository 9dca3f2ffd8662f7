/// The F# face of API.md: the task-based `Db` module a script uses (`let! db = Db.open' ...`),
/// with the SPEC §7 defaults (embedded compactor and GC on, as in the C# `SlateOptions`).
module Slate.Properties.FSharpApiTests

open System
open System.Text
open Expecto
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng

let allTests =
    testList
        "F# API"
        [ test "DbOptions.defaults run the embedded compactor and GC, like SlateOptions; foreground runs neither" {
              Expect.equal DbOptions.defaults.Compactor (Some CompactorSettings.defaults) "compactor on"
              Expect.equal DbOptions.defaults.GarbageCollector (Some GcSettings.defaults) "GC on"
              Expect.equal DbOptions.foreground.Compactor None "foreground: no compactor"
              Expect.equal DbOptions.foreground.GarbageCollector None "foreground: no GC"
              let fromCSharp = SlateOptions()
              Expect.isNotNull fromCSharp.Compactor "C# default compactor"
              Expect.isNotNull fromCSharp.GarbageCollector "C# default GC"
          }

          test "a script's session: openLocal, put, batch, delete, durable, get, scan, flush, close, reopen" {
              let dir = tempDir "fsharp-api"

              try
                  let db = await (Db.openLocal dir "script-db")
                  let w = await (Db.putString db "fruit/apple" "red")
                  awaitU (Db.awaitDurable db w)

                  Db.write
                      db
                      [ WriteOp.Put(utf8 "fruit/banana", utf8 "yellow", Ttl.Default)
                        WriteOp.Put(utf8 "veg/leek", utf8 "green", Ttl.Default)
                        WriteOp.Put(utf8 "fruit/cherry", utf8 "dark", Ttl.Default) ]
                  |> await
                  |> ignore

                  Db.delete db (utf8 "fruit/cherry") |> await |> ignore
                  Expect.equal (await (Db.getString db "fruit/apple")) (Some "red") "get"
                  Expect.equal (await (Db.getString db "fruit/cherry")) None "deleted"

                  Expect.equal
                      (await (Db.scanPrefixStrings db "fruit/"))
                      [ "fruit/apple", "red"; "fruit/banana", "yellow" ]
                      "prefix scan"

                  let all = await (Db.scan db KeyRange.all)

                  Expect.equal
                      [ for k, v in all -> Encoding.UTF8.GetString k, Encoding.UTF8.GetString v ]
                      [ "fruit/apple", "red"; "fruit/banana", "yellow"; "veg/leek", "green" ]
                      "full scan"

                  awaitU (Db.flush db FlushKind.MemTable)
                  awaitU (Db.close db)

                  let again =
                      await (Db.open' (LocalFileObjectStore(IO.Path.GetFullPath dir)) "script-db" DbOptions.defaults)

                  Expect.equal (await (Db.getString again "veg/leek")) (Some "green") "after reopen"
                  awaitU (Db.close again)
              finally
                  cleanup dir
          }

          test "with the default options the embedded compactor turns L0s into a sorted run" {
              let store = InMemoryObjectStore() :> IObjectStore

              let o =
                  { DbOptions.defaults with
                      L0SstSizeBytes = 1024L
                      FlushInterval = None
                      Compactor =
                          DbOptions.defaults.Compactor
                          |> Option.map (fun c ->
                              { c with
                                  PollInterval = TimeSpan.FromMilliseconds 50.0 }) }

              let db = await (Db.open' store "compacting" o)

              for round in 1..6 do
                  for i in 1..20 do
                      Db.putString db (sprintf "k%02d-%03d" round i) (String('x', 40))
                      |> await
                      |> ignore

                  awaitU (Db.flush db FlushKind.MemTable)

              let ms = ManifestStore(store, "compacting")
              let deadline = DateTime.UtcNow.AddSeconds 30.0
              let mutable compacted = false

              while not compacted && DateTime.UtcNow < deadline do
                  match await (ms.ReadLatestAsync ct) with
                  | Some m when not m.Manifest.Compacted.IsEmpty -> compacted <- true
                  | _ -> Threading.Thread.Sleep 50

              Expect.isTrue compacted "a sorted run appeared without any explicit compactor"
              Expect.equal (await (Db.getString db "k03-007")) (Some(String('x', 40))) "reads through the sorted run"
              awaitU (Db.close db)
          } ]
