module Slate.Properties.S3StoreTests

open Expecto

let allTests = testList "S3" []
