// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AIToken} from "../../src/AIToken.sol";
import {ComputePool} from "../../src/ComputePool.sol";
import {ComputeRegistry} from "../../src/ComputeRegistry.sol";
import {DomainRegistry} from "../../src/DomainRegistry.sol";
import {PrimeNetwork} from "../../src/PrimeNetwork.sol";
import {StakeManager} from "../../src/StakeManager.sol";
import {IComputePool} from "../../src/interfaces/IComputePool.sol";
import {IComputeRegistry} from "../../src/interfaces/IComputeRegistry.sol";
import {IDomainRegistry} from "../../src/interfaces/IDomainRegistry.sol";
import {IStakeManager} from "../../src/interfaces/IStakeManager.sol";
import {Vm} from "./Vm.sol";

/// @notice One full deployment, wired in the documented order, plus helpers for signatures and the
/// common steps of the provider/node/pool flow. The test contract is the deployer (DEFAULT_ADMIN_ROLE on
/// PrimeNetwork and AIToken, MINTER_ROLE).
abstract contract TestBase {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    bytes32 internal constant EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant NODE_KEY_TYPEHASH = keccak256("NodeKey(address provider,address node,uint256 nonce)");
    bytes32 internal constant POOL_INVITE_TYPEHASH =
        keccak256("PoolInvite(uint256 domainId,uint256 poolId,address node,uint256 nonce,uint256 expiry)");

    uint256 internal constant MIN_PER_UNIT = 1e15; // 0.001 token per compute unit
    uint256 internal constant UNBONDING = 7 days;
    uint256 internal constant START_TIME = 1_700_000_000;

    uint256 internal constant FEDERATOR_PK = 0xFEDE;
    uint256 internal constant VALIDATOR_PK = 0xA11D;
    uint256 internal constant MANAGER_PK = 0x3A4A;
    uint256 internal constant PROVIDER_PK = 0xB0B;
    uint256 internal constant PROVIDER2_PK = 0xCA7;
    uint256 internal constant NODE_PK = 0x40DE1;
    uint256 internal constant NODE2_PK = 0x40DE2;
    uint256 internal constant STRANGER_PK = 0xBAD;
    uint256 internal constant SLASHER_PK = 0x51A5;
    uint256 internal constant TREASURY_PK = 0x7EA5;

    /// Slash limits setUp installs: loose enough that only the slashing tests meet them.
    uint256 internal constant SLASH_PER_CALL = 100_000 ether;
    uint256 internal constant SLASH_PER_PROVIDER = 200_000 ether;
    uint256 internal constant SLASH_PER_NETWORK = 1_000_000 ether;
    uint256 internal constant SLASH_PERIOD = 1 days;

    address internal federator = vm.addr(FEDERATOR_PK);
    address internal validator = vm.addr(VALIDATOR_PK);
    address internal manager = vm.addr(MANAGER_PK);
    address internal provider = vm.addr(PROVIDER_PK);
    address internal provider2 = vm.addr(PROVIDER2_PK);
    address internal node = vm.addr(NODE_PK);
    address internal node2 = vm.addr(NODE2_PK);
    address internal stranger = vm.addr(STRANGER_PK);
    address internal slasher = vm.addr(SLASHER_PK);
    address internal treasury = vm.addr(TREASURY_PK);

    AIToken internal token;
    PrimeNetwork internal network;
    ComputeRegistry internal registry;
    DomainRegistry internal domains;
    StakeManager internal stakes;
    ComputePool internal pools;

    uint256 private _nonceSeed;

    function setUp() public virtual {
        vm.warp(START_TIME);
        (token, network, registry, domains, stakes, pools) = deploy();
        vm.label(address(token), "AIToken");
        vm.label(address(network), "PrimeNetwork");
        vm.label(address(registry), "ComputeRegistry");
        vm.label(address(domains), "DomainRegistry");
        vm.label(address(stakes), "StakeManager");
        vm.label(address(pools), "ComputePool");

        vm.startPrank(federator);
        network.setStakeMinimum(MIN_PER_UNIT);
        network.grantRole(network.SLASHER_ROLE(), slasher);
        network.setTreasury(treasury);
        network.setSlashLimits(SLASH_PER_CALL, SLASH_PER_PROVIDER, SLASH_PER_NETWORK, SLASH_PERIOD);
        vm.stopPrank();

        fund(provider, 1_000 ether);
        fund(provider2, 1_000 ether);
        fund(stranger, 1_000 ether);
    }

    /// @dev The documented deployment order (contracts/README.md); the caller is the deployer.
    function deploy()
        internal
        returns (AIToken, PrimeNetwork, ComputeRegistry, DomainRegistry, StakeManager, ComputePool)
    {
        AIToken t = new AIToken("AI Token", "AI");
        PrimeNetwork n = new PrimeNetwork(federator, validator, address(t));
        ComputeRegistry r = new ComputeRegistry(address(n));
        DomainRegistry d = new DomainRegistry(address(n));
        StakeManager s = new StakeManager(address(n), address(t), UNBONDING);
        ComputePool p = new ComputePool(address(n), address(r), address(d), address(s));
        n.setModules(r, d, s, p);
        return (t, n, r, d, s, p);
    }

    /// @dev Mints `amount` to `who` and approves PrimeNetwork for all of it.
    function fund(address who, uint256 amount) internal {
        token.mint(who, amount);
        vm.prank(who);
        token.approve(address(network), type(uint256).max);
    }

    // ------------------------------------------------------------------ signatures

    function signDigest(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function domainSeparator(string memory name, uint256 chainId, address verifyingContract)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(EIP712_DOMAIN_TYPEHASH, keccak256(bytes(name)), keccak256("1"), chainId, verifyingContract)
        );
    }

    function typedDigest(bytes32 separator, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", separator, structHash));
    }

    /// @dev The node-key signature, computed from the spec (not from the contract's helper).
    function nodeKeySig(uint256 nodePk, address forProvider, uint256 nonce, uint256 chainId, address prime)
        internal
        pure
        returns (bytes memory)
    {
        bytes32 structHash = keccak256(abi.encode(NODE_KEY_TYPEHASH, forProvider, vm.addr(nodePk), nonce));
        return signDigest(nodePk, typedDigest(domainSeparator("PrimeNetwork", chainId, prime), structHash));
    }

    /// @dev A valid node-key signature for this chain and deployment with the node's current nonce.
    function nodeKeySig(uint256 nodePk, address forProvider) internal view returns (bytes memory) {
        return nodeKeySig(nodePk, forProvider, network.nodeKeyNonce(vm.addr(nodePk)), block.chainid, address(network));
    }

    /// @dev An invite signature, computed from the spec.
    function inviteSig(
        uint256 signerPk,
        uint256 domainId,
        uint256 poolId,
        address forNode,
        uint256 nonce,
        uint256 expiry,
        uint256 chainId,
        address poolContract
    ) internal pure returns (bytes memory) {
        bytes32 structHash = keccak256(abi.encode(POOL_INVITE_TYPEHASH, domainId, poolId, forNode, nonce, expiry));
        return signDigest(signerPk, typedDigest(domainSeparator("ComputePool", chainId, poolContract), structHash));
    }

    struct Invite {
        uint256 nonce;
        uint256 expiry;
        bytes signature;
    }

    /// @dev A fresh, valid invite from the manager for `forNode` into `poolId`, expiring in an hour.
    function invite(uint256 poolId, address forNode) internal returns (Invite memory inv) {
        inv.nonce = uint256(keccak256(abi.encode("invite", ++_nonceSeed)));
        inv.expiry = block.timestamp + 1 hours;
        uint256 domainId = pools.getComputePool(poolId).domainId;
        inv.signature =
            inviteSig(MANAGER_PK, domainId, poolId, forNode, inv.nonce, inv.expiry, block.chainid, address(pools));
    }

    // ------------------------------------------------------------------ flow steps

    function register(address who, uint256 stake) internal {
        vm.prank(who);
        network.registerProvider(stake);
    }

    function whitelist(address who) internal {
        vm.prank(validator);
        network.whitelistProvider(who);
    }

    function addNode(address who, uint256 nodePk, uint256 units) internal {
        bytes memory sig = nodeKeySig(nodePk, who);
        vm.prank(who);
        network.addComputeNode(vm.addr(nodePk), "ipfs://specs", units, sig);
    }

    function validate(address who, address nodeAddr) internal {
        vm.prank(validator);
        network.validateNode(who, nodeAddr);
    }

    /// @dev provider registered with enough stake for `units`, whitelisted, node added and validated.
    function readyNode(address who, uint256 nodePk, uint256 units) internal {
        if (!registry.isProviderRegistered(who)) {
            register(who, units * MIN_PER_UNIT);
            whitelist(who);
        } else {
            vm.prank(who);
            network.increaseStake(units * MIN_PER_UNIT);
        }
        addNode(who, nodePk, units);
        validate(who, vm.addr(nodePk));
    }

    function createDomain() internal returns (uint256 domainId) {
        vm.prank(federator);
        domainId = network.createDomain("inference", "ipfs://domain");
    }

    /// @dev A domain and an ACTIVE pool managed by `manager`.
    function activePool(uint256 computeLimit) internal returns (uint256 poolId) {
        uint256 domainId = createDomain();
        vm.prank(federator);
        poolId = pools.createComputePool(domainId, manager, "pool", "gpu:count>=1", computeLimit);
        vm.prank(manager);
        pools.startComputePool(poolId);
    }

    function join(uint256 poolId, address who, address nodeAddr) internal {
        Invite memory inv = invite(poolId, nodeAddr);
        vm.prank(who);
        pools.joinComputePool(poolId, who, nodeAddr, inv.nonce, inv.expiry, inv.signature);
    }

    // ------------------------------------------------------------------ assertions

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(address a, address b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bytes32 a, bytes32 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(string memory a, string memory b, string memory what) internal pure {
        if (keccak256(bytes(a)) != keccak256(bytes(b))) revert(string.concat(what, ": '", a, "' != '", b, "'"));
    }

    function assertTrue(bool condition, string memory what) internal pure {
        if (!condition) revert(string.concat("expected true: ", what));
    }

    function assertFalse(bool condition, string memory what) internal pure {
        if (condition) revert(string.concat("expected false: ", what));
    }

    /// @dev Foundry's `bound`, which lives in forge-std: maps `x` into [lo, hi] uniformly enough for fuzzing.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        if (hi < lo) revert("bound: hi < lo");
        if (hi == type(uint256).max && lo == 0) return x;
        return lo + (x % (hi - lo + 1));
    }

    function unauthorized(address account, bytes32 role) internal pure returns (bytes memory) {
        return abi.encodeWithSignature("AccessControlUnauthorizedAccount(address,bytes32)", account, role);
    }
}
