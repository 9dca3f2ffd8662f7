/// The garbage collector running concurrently: passes racing a live writer (MinAge 0, a moving
/// clock, an expiring checkpoint), and the loop embedded in `Db` (started by open, stopped by close).
module Slate.Properties.GcLoopTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.EngineTests.Eng
open Slate.Properties.GcFixtures

let raceTest (b: Backend) =
    test (sprintf "%s: a writer racing GC passes keeps working; durable data survives a reopen" b.Name) {
        withStore b (fun store clock ->
            let o =
                { dbOptions clock with
                    FlushInterval = Some(TimeSpan.FromMilliseconds 5.0)
                    L0SstSizeBytes = 1024L }

            let db = openDb store path o
            // a compactor state whose only job is newer than everything: the cutoff then rests on
            // the newest published L0 alone, so unpublished uploads must survive by their ULID
            clock.Advance(TimeSpan.FromHours 1.0)
            writeCompactorState store 1UL [ completedJob clock ]
            clock.Advance(TimeSpan.FromHours -1.0)
            let gcSettings = { settings with MinAge = TimeSpan.Zero }
            use stop = new CancellationTokenSource()

            let gcTask =
                Task.Run<int * (string * string) list>(fun () ->
                    task {
                        let mutable passes = 0
                        let failures = ResizeArray()

                        while not stop.IsCancellationRequested do
                            clock.Advance(TimeSpan.FromMilliseconds 200.0)
                            let! r = Gc.runOnceAsync store path gcSettings clock ct
                            failures.AddRange(GcReport.failures r)
                            passes <- passes + 1
                            do! Task.Delay 3

                        return passes, List.ofSeq failures
                    })

            let model =
                Collections.Generic.SortedDictionary<string, string>(StringComparer.Ordinal)

            for i in 0..399 do
                let k = sprintf "w%03d" (i % 150)
                let v = sprintf "v%d-%s" i (String('x', 40))
                let w = put db k v
                model[k] <- v

                if i % 25 = 24 then
                    awaitU (db.AwaitDurableAsync(w.Seq, ct))

                if i = 200 then
                    let expire = uint32 (clock.GetUtcNow().ToUnixTimeSeconds() + 2L)
                    addCheckpoint store clock id (Some expire) |> ignore

            awaitU (db.FlushAsync(FlushKind.Wal, ct))
            Thread.Sleep 200
            stop.Cancel()
            let passes, failures = await gcTask
            Expect.isGreaterThanOrEqual passes 3 "several GC passes ran during the writes"
            Expect.isEmpty failures "no delete failed"
            let expected = [ for kv in model -> kv.Key, kv.Value ]
            Expect.equal (scanAll db readOpts) expected "the writer reads everything"
            Expect.isEmpty (latest store).Manifest.Checkpoints "the checkpoint expired and was removed"
            awaitU (db.CloseAsync(None, ct))
            Expect.equal (reopenScan store clock) expected "all durable data present after a reopen")
    }

let embeddedTest (b: Backend) =
    test (sprintf "%s: the embedded collector runs every Interval and stops at close" b.Name) {
        withStore b (fun store clock ->
            let o =
                { dbOptions clock with
                    GarbageCollector =
                        Some
                            { settings with
                                Interval = TimeSpan.FromMilliseconds 50.0
                                MinAge = TimeSpan.FromSeconds 1.0 } }

            let db = openDb store path o

            for r in 1..4 do
                writeRound db "e" r 10
                awaitU (db.FlushAsync(FlushKind.MemTable, ct))

            let count = (manifestIds store).Length
            Expect.isGreaterThanOrEqual count 5 "several manifests"
            Thread.Sleep 200
            Expect.equal (manifestIds store).Length count "nothing younger than MinAge goes"
            clock.Advance(TimeSpan.FromSeconds 10.0)
            let deadline = DateTime.UtcNow.AddSeconds 10.0

            while (manifestIds store).Length > 1 && DateTime.UtcNow < deadline do
                Thread.Sleep 20

            Expect.equal (manifestIds store) [ (latest store).Id ] "the loop removed the old manifests"
            let content = scanAll db readOpts
            awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
            addCheckpoint store clock id None |> ignore
            addCheckpoint store clock id None |> ignore
            let after = manifestIds store
            clock.Advance(TimeSpan.FromSeconds 10.0)
            Thread.Sleep 300
            Expect.equal (manifestIds store) after "no pass after close"
            Expect.equal (reopenScan store clock) content "reads identically")
    }

let validationTest =
    test "GarbageCollector settings are validated at open" {
        let store = InMemoryObjectStore() :> IObjectStore

        for bad in
            [ { settings with
                  Interval = TimeSpan.Zero }
              { settings with
                  MinAge = TimeSpan.FromSeconds -1.0 } ] do
            expectSlate SlateErrorKind.Invalid "open" (fun () ->
                Db.OpenAsync(
                    store,
                    path,
                    { options with
                        GarbageCollector = Some bad },
                    ct
                )
                :> Task)
            |> ignore
    }

let allTests =
    testList
        "loop"
        [ for b in backends do
              yield raceTest b
              yield embeddedTest b
          yield validationTest ]
