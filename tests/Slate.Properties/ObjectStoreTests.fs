module Slate.Properties.ObjectStoreTests

open Expecto

let allTests = testList "ObjectStore" []
