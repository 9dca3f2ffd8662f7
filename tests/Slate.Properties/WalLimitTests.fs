/// The writer freezes its memtable after 4096 WAL SSTs (SPEC §5.5), so that replay stays bounded.
module Slate.Properties.WalLimitTests

open System.Threading
open Expecto
open Slate.Model
open Slate.Engine

let allTests =
    testList
        "WalLimit"
        [ testCase "4096 WAL flushes without a memtable flush freeze the memtable into an L0 SST"
          <| fun () ->
              let ct = CancellationToken.None
              let store = InMemoryObjectStore()

              let options =
                  { DbOptions.foreground with
                      FlushInterval = None
                      RandomSeed = Some 11 }

              let db = (Db.OpenAsync(store, "wal-limit", options, ct)).Result

              let key (i: int) =
                  System.Text.Encoding.ASCII.GetBytes(sprintf "k%05d" i)

              // WAL id 1 is the fence; flushes 1..4094 write WAL ids 2..4095
              for i in 1..4094 do
                  db.WriteAsync([ WriteOp.Put(key i, [| byte i |], Ttl.Default) ], ct).Wait()
                  db.FlushAsync(FlushKind.Wal, ct).Wait()

              let l0Count () =
                  (db.ManifestStore.ReadLatestAsync ct).Result.Value.Manifest.L0.Length

              Expect.equal (l0Count ()) 0 "no L0 while fewer than 4096 WAL ids were flushed"

              for i in 4095..4100 do
                  db.WriteAsync([ WriteOp.Put(key i, [| byte i |], Ttl.Default) ], ct).Wait()
                  db.FlushAsync(FlushKind.Wal, ct).Wait()

              let deadline = System.DateTime.UtcNow.AddSeconds 20.0

              while l0Count () = 0 && System.DateTime.UtcNow < deadline do
                  Thread.Sleep 20

              Expect.equal (l0Count ()) 1 "one L0 published after 4096 WAL flushes"
              db.CloseAsync(None, ct).Wait()
              let db2 = (Db.OpenAsync(store, "wal-limit", options, ct)).Result

              let read: ReadOpts =
                  { Durability = Durability.Memory
                    Dirty = false
                    CacheBlocks = true }

              for i in [ 1; 2048; 4095; 4100 ] do
                  Expect.isSome (db2.GetAsync(key i, read, ct)).Result (sprintf "key %d survives" i)

              db2.CloseAsync(None, ct).Wait() ]
