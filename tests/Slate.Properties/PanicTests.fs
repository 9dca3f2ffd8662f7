/// SPEC §8: a background task that crashes (an exception that is neither a store failure nor a
/// Slate error) closes the client with `Closed(Panic)`, and every later call reports it.
module Slate.Properties.PanicTests

open System
open System.Threading
open Expecto
open Slate
open Slate.Engine
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng
open Slate.Properties.ReaderTests

/// A crash (StoreCrashedException: not an ObjectStoreException, so nothing retries it) on every
/// request from now on.
let private crashEverything (faulty: FaultInjectingObjectStore) =
    faulty.SetSchedule(Func<FaultRequest, FaultAction>(fun _ -> FaultAction.CrashBeforeEffect))

let private panicked (what: string) (e: SlateException) =
    Expect.equal e.CloseReason (Nullable CloseReason.Panic) (sprintf "%s: Panic (%s)" what e.Message)
    Expect.stringContains e.Message "panicked" (sprintf "%s: the message says what happened" what)
    Expect.stringContains e.Message "crash" (sprintf "%s: and names the cause" what)

let allTests =
    testList
        "Panic"
        [ test "a crashed WAL upload closes the writer with Closed(Panic); every later call reports it" {
              let faulty = FaultInjectingObjectStore(InMemoryObjectStore())
              let db = openDb faulty "panic" options
              put db "a" "1" |> ignore
              awaitU (db.FlushAsync(FlushKind.Wal, ct))

              let pending =
                  db.WriteAsync([ WriteOp.Put(utf8 "b", utf8 "2", Ttl.Default) ], ct) |> await

              crashEverything faulty

              let first =
                  expectSlate SlateErrorKind.Closed "Flush(Wal) over a crashing store" (fun () ->
                      db.FlushAsync(FlushKind.Wal, ct))

              panicked "the flush" first
              Expect.isNotNull first.InnerException "the crash is kept as the inner exception"

              for name, call in
                  [ "AwaitDurable", (fun () -> db.AwaitDurableAsync(pending.Seq, ct))
                    "write", (fun () -> db.WriteAsync([ WriteOp.Delete(utf8 "a") ], ct) :> Tasks.Task)
                    "get", (fun () -> db.GetAsync(utf8 "a", readOpts, ct) :> Tasks.Task)
                    "Flush(MemTable)", (fun () -> db.FlushAsync(FlushKind.MemTable, ct)) ] do
                  panicked name (expectSlate SlateErrorKind.Closed name call)

              Expect.equal db.CloseReason (Some CloseReason.Panic) "CloseReason"
              // the acknowledged durable write survives in the store
              let reopened = openDb faulty.Inner "panic" options
              Expect.equal (get reopened readOpts "a") (Some "1") "durable data survives the panic"
              awaitU (reopened.CloseAsync(None, ct))
          }

          test "a crashed manifest poll closes a reader with Closed(Panic)" {
              let faulty = FaultInjectingObjectStore(InMemoryObjectStore())
              let db = openDb faulty "panic-r" options
              put db "k" "v" |> ignore
              Rd.flushWal db

              let r =
                  Rd.openReader
                      faulty
                      "panic-r"
                      { Rd.follow with
                          ManifestPollInterval = TimeSpan.FromMilliseconds 20.0 }

              Expect.equal (Rd.get r "k") (Some "v") "the reader reads before the crash"
              crashEverything faulty
              let deadline = DateTime.UtcNow.AddSeconds 20.0
              let mutable caught: SlateException option = None

              while caught.IsNone && DateTime.UtcNow < deadline do
                  try
                      Rd.get r "k" |> ignore
                      Thread.Sleep 20
                  with :? SlateException as e when e.Kind = SlateErrorKind.Closed ->
                      caught <- Some e

              match caught with
              | Some e -> panicked "reader get" e
              | None -> failtest "the reader never reported the crashed poller"

              panicked
                  "a later get"
                  (expectSlate SlateErrorKind.Closed "get" (fun () -> r.GetAsync(utf8 "k", readOpts, ct) :> Tasks.Task))
          } ]
