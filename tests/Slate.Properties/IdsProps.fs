module Slate.Properties.IdsProps

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil

let allTests =
    testList
        "Ids"
        [ testProp "ULID text round-trips and keeps the timestamp"
          <| fun (ts: uint64) (hi: uint16) (lo: uint64) ->
              let ts = int64 (ts % (1UL <<< 48))
              let u = Ulid.create ts hi lo
              let text = Ulid.toString u

              text.Length = 26
              && Ulid.tryParse text = Some u
              && Ulid.tryParse (text.ToLowerInvariant()) = Some u
              && Ulid.timestampMs u = ts

          testProp "ULID text order equals numeric order"
          <| fun (a: uint64) (b: uint64) (c: uint64) (d: uint64) ->
              let u1: Ulid = { High = a; Low = b }
              let u2: Ulid = { High = c; Low = d }
              // only ULIDs whose top 2 bits are zero have a 26-char text
              let u1: Ulid = { u1 with High = u1.High >>> 2 }
              let u2: Ulid = { u2 with High = u2.High >>> 2 }
              sign (String.CompareOrdinal(Ulid.toString u1, Ulid.toString u2)) = sign (compare u1 u2)

          test "known ULID" {
              // timestamp 1469922850259 ms encodes as 01ARZ3NDEK (10 Crockford characters)
              let u = Ulid.create 1469922850259L 0us 0UL
              Expect.equal ((Ulid.toString u).Substring(0, 10)) "01ARZ3NDEK" "timestamp prefix"
              Expect.equal (Ulid.toString ({ High = 0UL; Low = 0UL }: Ulid)) "00000000000000000000000000" "zero"

              Expect.equal
                  (Ulid.toString (
                      { High = UInt64.MaxValue
                        Low = UInt64.MaxValue }
                      : Ulid
                  ))
                  "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
                  "max"
          }

          testProp "UUID high/low round-trips through System.Guid"
          <| fun (g: Guid) -> Uuid.toGuid (Uuid.ofGuid g) = g

          test "UUID high is big-endian bytes 0-7 of the RFC 4122 form" {
              let g = Guid.Parse "00112233-4455-6677-8899-aabbccddeeff"
              let u = Uuid.ofGuid g
              Expect.equal u.High 0x0011223344556677UL "high"
              Expect.equal u.Low 0x8899aabbccddeeffUL "low"
              Expect.equal (Uuid.toString u) "00112233-4455-6677-8899-aabbccddeeff" "text"
          }

          testProp "v4 UUIDs carry version 4 and the RFC variant"
          <| fun (a: uint64) (b: uint64) ->
              let g = Uuid.toGuid (Uuid.v4 a b)
              let s = g.ToString("D")
              s[14] = '4' && "89ab".Contains(s[19]) ]
