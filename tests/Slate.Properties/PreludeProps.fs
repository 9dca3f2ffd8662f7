module Slate.Properties.PreludeProps

open System
open Expecto
open Slate.Model
open Slate.Properties.TestUtil

let allTests =
    testList
        "Prelude"
        [ testProp "byte order equals lexicographic order of unsigned bytes, prefixes first"
          <| fun (a: byte[]) (b: byte[]) ->
              let a = if isNull a then [||] else a
              let b = if isNull b then [||] else b
              let model = compare (List.ofArray a) (List.ofArray b) // F# list compare: unsigned bytes, prefix first
              sign (Bytes.compare a b) = sign model

          testProp "varint round-trips and has the documented size"
          <| fun (v: uint32) ->
              let buf = Array.zeroCreate 5
              let n = Varint.write (Span buf) v

              n = Varint.size v
              && (match Varint.tryRead (ReadOnlySpan buf) 0 with
                  | ValueSome(struct (x, next)) -> x = v && next = n
                  | ValueNone -> false)

          test "varint golden vector 300 -> ac 02" {
              let buf = Array.zeroCreate 5
              let n = Varint.write (Span buf) 300u
              Expect.equal buf[0 .. n - 1] [| 0xacuy; 0x02uy |] "300"
          }

          test "truncated or overlong varints are rejected" {
              Expect.isTrue (Varint.tryRead (ReadOnlySpan [| 0x80uy |]) 0).IsNone "truncated"

              Expect.isTrue
                  (Varint.tryRead (ReadOnlySpan [| 0xffuy; 0xffuy; 0xffuy; 0xffuy; 0x7fuy |]) 0).IsNone
                  "> u32"

              Expect.isTrue
                  (Varint.tryRead (ReadOnlySpan [| 0x80uy; 0x80uy; 0x80uy; 0x80uy; 0x80uy; 0x01uy |]) 0).IsNone
                  "6 bytes"
          }

          test "CRC-32 check value" {
              Expect.equal (Crc32.ofArray (Text.Encoding.ASCII.GetBytes "123456789")) 0xCBF43926u "zlib CRC"
          }

          testProp "big-endian u64 round-trips"
          <| fun (v: uint64) -> BigEndian.u64 (ReadOnlySpan(BigEndian.bytesOfU64 v)) 0 = v ]
