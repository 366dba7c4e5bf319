// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {AccessControlEnumerable} from "@openzeppelin/contracts/access/extensions/AccessControlEnumerable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IComputePool} from "./interfaces/IComputePool.sol";
import {IComputeRegistry} from "./interfaces/IComputeRegistry.sol";
import {IDomainRegistry} from "./interfaces/IDomainRegistry.sol";
import {IPrimeErrors} from "./interfaces/IPrimeErrors.sol";
import {IPrimeNetwork} from "./interfaces/IPrimeNetwork.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";

/// @title PrimeNetwork
/// @notice The front door for providers, validators and the federator: registration with stake, the
/// provider whitelist, compute nodes (with a node-key signature), node validation, stake changes and
/// slashing, and domains. The modules (ComputeRegistry, DomainRegistry, StakeManager, ComputePool) are
/// bound to this contract at their construction and accept writes only from it.
///
/// Roles: DEFAULT_ADMIN_ROLE (the deployer: `setModules`, grants FEDERATOR_ROLE); FEDERATOR_ROLE (network
/// operator: stake minimum, unbonding period, domains, whitelist, treasury and slash limits, admin of
/// VALIDATOR_ROLE and SLASHER_ROLE; ComputePool also lets it create pools); VALIDATOR_ROLE (validator service:
/// whitelist/blacklist, node validation, node removal); SLASHER_ROLE (slashing, nothing else; nobody holds it
/// until the federator grants it).
///
/// Slashing is bounded so that one stolen or buggy slasher key cannot empty the network: the tokens go to the
/// federator's treasury (never to the caller), and each slash is capped per call, per provider per period and
/// for the whole network per period (`SlashLimits`). Until the federator sets a treasury and non-zero caps,
/// every slash reverts.
///
/// Node-key ownership is an EIP-712 signature by the node key over
/// `NodeKey(address provider,address node,uint256 nonce)` in the domain {name "PrimeNetwork", version "1",
/// chainId, verifyingContract = this}. `nonce` is `nodeKeyNonce(node)`; it is consumed when the node is
/// added, so a signature works once, for one provider, on one chain and one deployment.
contract PrimeNetwork is IPrimeNetwork, IPrimeErrors, AccessControlEnumerable, EIP712 {
    using SafeERC20 for IERC20;

    bytes32 public constant FEDERATOR_ROLE = keccak256("FEDERATOR_ROLE");
    bytes32 public constant VALIDATOR_ROLE = keccak256("VALIDATOR_ROLE");
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    bytes32 public constant NODE_KEY_TYPEHASH = keccak256("NodeKey(address provider,address node,uint256 nonce)");
    /// Longest slash period the federator may set.
    uint256 public constant MAX_SLASH_PERIOD = 365 days;
    /// A slash reason is 1..MAX_SLASH_REASON_BYTES bytes (it is stored in two events).
    uint256 public constant MAX_SLASH_REASON_BYTES = 1024;

    /// The staking token (AIToken).
    address public immutable aiToken;

    IComputeRegistry public computeRegistry;
    IDomainRegistry public domainRegistry;
    IStakeManager public stakeManager;
    IComputePool public computePool;

    /// Next nonce the node key must sign in a NodeKey message.
    mapping(address node => uint256) public nodeKeyNonce;

    /// Where slashed stake goes; zero (slashing refused) until the federator sets it.
    address public treasury;
    SlashLimits private _slashLimits;
    SlashWindow private _networkSlashWindow;
    mapping(address provider => SlashWindow) private _providerSlashWindows;

    modifier wired() {
        if (address(computePool) == address(0)) revert NotWired();
        _;
    }

    modifier onlyFederatorOrValidator() {
        if (!hasRole(FEDERATOR_ROLE, msg.sender) && !hasRole(VALIDATOR_ROLE, msg.sender)) {
            revert NotFederatorOrValidator(msg.sender);
        }
        _;
    }

    /// @param federator receives FEDERATOR_ROLE
    /// @param validator receives VALIDATOR_ROLE (the federator can grant it to more accounts)
    /// @param aiToken_ the staking token
    /// @dev The deployer (msg.sender) receives DEFAULT_ADMIN_ROLE, needed for `setModules`.
    constructor(address federator, address validator, address aiToken_) EIP712("PrimeNetwork", "1") {
        if (federator == address(0) || validator == address(0) || aiToken_ == address(0)) revert ZeroAddress();
        aiToken = aiToken_;
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
        _grantRole(FEDERATOR_ROLE, federator);
        _grantRole(VALIDATOR_ROLE, validator);
        _setRoleAdmin(VALIDATOR_ROLE, FEDERATOR_ROLE);
        _setRoleAdmin(SLASHER_ROLE, FEDERATOR_ROLE);
    }

    // ------------------------------------------------------------------ wiring (admin)

    /// @notice Connects the four modules, once. Each must be bound to this contract (and the pool to these
    /// registries and this stake manager, the stake manager to this token); the registry is told which
    /// pool may flip its `isActive` flags.
    function setModules(
        IComputeRegistry computeRegistry_,
        IDomainRegistry domainRegistry_,
        IStakeManager stakeManager_,
        IComputePool computePool_
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(computePool) != address(0)) revert AlreadyWired();
        if (computeRegistry_.primeNetwork() != address(this)) revert ModuleMismatch(address(computeRegistry_));
        if (domainRegistry_.primeNetwork() != address(this)) revert ModuleMismatch(address(domainRegistry_));
        if (stakeManager_.primeNetwork() != address(this) || stakeManager_.token() != aiToken) {
            revert ModuleMismatch(address(stakeManager_));
        }
        if (
            computePool_.primeNetwork() != address(this) || computePool_.computeRegistry() != address(computeRegistry_)
                || computePool_.domainRegistry() != address(domainRegistry_)
                || computePool_.stakeManager() != address(stakeManager_)
        ) revert ModuleMismatch(address(computePool_));

        computeRegistry = computeRegistry_;
        domainRegistry = domainRegistry_;
        stakeManager = stakeManager_;
        computePool = computePool_;
        computeRegistry_.setComputePool(address(computePool_));
        emit ModulesSet(
            address(computeRegistry_), address(domainRegistry_), address(stakeManager_), address(computePool_)
        );
    }

    // ------------------------------------------------------------------ federator

    /// @notice Sets the stake required per compute unit (token base units).
    function setStakeMinimum(uint256 minimumPerComputeUnit) external onlyRole(FEDERATOR_ROLE) wired {
        stakeManager.setStakeMinimum(minimumPerComputeUnit);
    }

    /// @notice Sets the delay between unstaking and withdrawal for future unbonds.
    function setUnbondingPeriod(uint256 period) external onlyRole(FEDERATOR_ROLE) wired {
        stakeManager.setUnbondingPeriod(period);
    }

    /// @notice Sets where slashed stake goes. Not zero, not this contract or one of its modules.
    function setTreasury(address treasury_) external onlyRole(FEDERATOR_ROLE) {
        if (treasury_ == address(0)) revert ZeroAddress();
        if (
            treasury_ == address(this) || treasury_ == address(stakeManager) || treasury_ == address(computeRegistry)
                || treasury_ == address(domainRegistry) || treasury_ == address(computePool)
        ) revert InvalidTreasury(treasury_);
        emit TreasuryUpdated(treasury, treasury_);
        treasury = treasury_;
    }

    /// @notice Sets the slash caps (token base units) and the period (1..MAX_SLASH_PERIOD seconds) over which
    /// the per-period caps count. What open windows have used stays counted against the new caps.
    function setSlashLimits(uint256 perCall, uint256 perProviderPerPeriod, uint256 perNetworkPerPeriod, uint256 period)
        external
        onlyRole(FEDERATOR_ROLE)
    {
        if (period == 0 || period > MAX_SLASH_PERIOD) revert InvalidSlashPeriod(period);
        _slashLimits = SlashLimits(perCall, perProviderPerPeriod, perNetworkPerPeriod, period);
        emit SlashLimitsUpdated(perCall, perProviderPerPeriod, perNetworkPerPeriod, period);
    }

    /// @notice Creates a compute domain and returns its id (0, 1, 2, ...).
    function createDomain(string calldata name, string calldata parametersURI)
        external
        onlyRole(FEDERATOR_ROLE)
        wired
        returns (uint256 domainId)
    {
        domainId = domainRegistry.create(name, parametersURI);
        emit DomainCreated(domainId, name, parametersURI);
    }

    // ------------------------------------------------------------------ federator or validator

    /// @notice Allows a registered provider to add nodes and join pools.
    function whitelistProvider(address provider) external onlyFederatorOrValidator wired {
        computeRegistry.setWhitelistStatus(provider, true);
        emit ProviderWhitelisted(provider);
    }

    /// @notice Stops a provider from adding nodes and joining pools. Nodes already in pools stay there
    /// until their pool ejects them (orchestrators watch ProviderBlacklisted) or they leave.
    function blacklistProvider(address provider) external onlyFederatorOrValidator wired {
        computeRegistry.setWhitelistStatus(provider, false);
        emit ProviderBlacklisted(provider);
    }

    // ------------------------------------------------------------------ validator

    /// @notice Marks a node as checked. The provider's stake must cover its current compute.
    function validateNode(address provider, address node) external onlyRole(VALIDATOR_ROLE) wired {
        uint256 required = calculateMinimumStake(provider, 0);
        uint256 stake = stakeManager.getStake(provider);
        if (stake < required) revert StakeBelowMinimum(stake, required);
        computeRegistry.setNodeValidationStatus(provider, node, true);
        emit ComputeNodeValidated(provider, node);
    }

    /// @notice Withdraws a node's validation: it can no longer join pools. A node already in a pool
    /// stays there until its pool ejects it (orchestrators watch ComputeNodeInvalidated) or it leaves.
    function invalidateNode(address provider, address node) external onlyRole(VALIDATOR_ROLE) wired {
        computeRegistry.setNodeValidationStatus(provider, node, false);
        emit ComputeNodeInvalidated(provider, node);
    }

    // ------------------------------------------------------------------ slasher

    /// @notice Takes up to `amount` of the provider's stake (then of its pending unbonds) and sends it to the
    /// treasury. Refused unless `provider` is registered, a treasury is set, `reason` is 1..MAX_SLASH_REASON_BYTES
    /// bytes and `amount` fits the per-call cap and what is left of the provider's and the network's period caps.
    /// What is taken counts against both periods. Emits `ProviderSlashed` (with the slasher); StakeManager emits
    /// `Slashed`.
    /// @return slashed what was taken (less than `amount` when the provider has less)
    function slash(address provider, uint256 amount, bytes calldata reason)
        external
        onlyRole(SLASHER_ROLE)
        wired
        returns (uint256 slashed)
    {
        if (!computeRegistry.isProviderRegistered(provider)) revert ProviderNotRegistered(provider);
        if (amount == 0) revert ZeroAmount();
        if (reason.length == 0 || reason.length > MAX_SLASH_REASON_BYTES) revert InvalidSlashReason(reason.length);
        address to = treasury;
        if (to == address(0)) revert TreasuryNotSet();
        SlashLimits memory limits = _slashLimits;
        if (amount > limits.perCall) revert SlashExceedsCallCap(amount, limits.perCall);
        SlashWindow storage ofProvider = _openWindow(_providerSlashWindows[provider], limits.period);
        uint256 left = _left(ofProvider, limits.perProviderPerPeriod);
        if (amount > left) revert SlashExceedsProviderPeriodCap(provider, amount, left);
        SlashWindow storage ofNetwork = _openWindow(_networkSlashWindow, limits.period);
        left = _left(ofNetwork, limits.perNetworkPerPeriod);
        if (amount > left) revert SlashExceedsNetworkPeriodCap(amount, left);

        slashed = stakeManager.slash(provider, amount, to, reason);
        ofProvider.used += slashed;
        ofNetwork.used += slashed;
        emit ProviderSlashed(provider, msg.sender, to, slashed, reason);
    }

    // ------------------------------------------------------------------ providers

    /// @notice Registers the caller as a provider with `stake` tokens, pulled with `transferFrom` (approve
    /// PrimeNetwork first). `stake` must be at least one compute unit's minimum. New providers are not
    /// whitelisted.
    function registerProvider(uint256 stake) external wired {
        _register(stake);
    }

    /// @notice `registerProvider` with an EIP-2612 permit for this contract instead of a prior approve.
    /// @dev A failing permit is ignored (someone may have submitted it first); the transfer then decides.
    function registerProviderWithPermit(uint256 stake, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external wired {
        try IERC20Permit(aiToken).permit(msg.sender, address(this), stake, deadline, v, r, s) {} catch {}
        _register(stake);
    }

    /// @notice Adds `amount` to the caller's stake (approve PrimeNetwork first).
    function increaseStake(uint256 amount) external wired {
        if (!computeRegistry.isProviderRegistered(msg.sender)) revert ProviderNotRegistered(msg.sender);
        if (amount == 0) revert ZeroAmount();
        _pullStake(msg.sender, amount);
    }

    /// @notice Moves `amount` of the caller's stake into unbonding; withdraw it from StakeManager after
    /// the unbonding period. The stake left must still cover `calculateMinimumStake(caller, 0)`.
    function reclaimStake(uint256 amount) external wired {
        if (amount == 0) revert ZeroAmount();
        uint256 available = getReclaimableStake(msg.sender);
        if (amount > available) revert ReclaimExceedsExcess(amount, available);
        stakeManager.unstake(msg.sender, amount);
    }

    /// @notice Adds a compute node owned by the caller. `signature` is the node key's EIP-712 signature of
    /// `NodeKey(provider = msg.sender, node, nonce = nodeKeyNonce(node))`. The caller must be whitelisted
    /// and its stake must cover `calculateMinimumStake(caller, computeUnits)`.
    function addComputeNode(address node, string calldata specsURI, uint256 computeUnits, bytes calldata signature)
        external
        wired
    {
        address provider = msg.sender;
        if (!computeRegistry.isProviderRegistered(provider)) revert ProviderNotRegistered(provider);
        if (!computeRegistry.isProviderWhitelisted(provider)) revert ProviderNotWhitelisted(provider);
        if (node == address(0)) revert ZeroAddress();
        uint256 nonce = nodeKeyNonce[node];
        if (!SignatureChecker.isValidSignatureNow(node, hashNodeKey(provider, node, nonce), signature)) {
            revert InvalidNodeSignature();
        }
        nodeKeyNonce[node] = nonce + 1;
        // The registry checks the units and that the node is new; the stake check then sees the new total
        // (a revert undoes the addition).
        computeRegistry.addComputeNode(provider, node, computeUnits, specsURI);
        uint256 required = calculateMinimumStake(provider, 0);
        uint256 stake = stakeManager.getStake(provider);
        if (stake < required) revert StakeBelowMinimum(stake, required);
        emit ComputeNodeAdded(provider, node, computeUnits, specsURI);
    }

    /// @notice Removes a node that is not in a pool. Callable by its provider or by a validator.
    function removeComputeNode(address provider, address node) external wired {
        if (msg.sender != provider && !hasRole(VALIDATOR_ROLE, msg.sender)) {
            revert CallerNotProvider(msg.sender, provider);
        }
        computeRegistry.removeComputeNode(provider, node);
        emit ComputeNodeRemoved(provider, node);
    }

    // ------------------------------------------------------------------ views

    /// @notice Stake `provider` needs to hold with `computeUnits` more units than it has now:
    /// `(providerTotalCompute + computeUnits) * stakeMinimumPerComputeUnit`.
    function calculateMinimumStake(address provider, uint256 computeUnits) public view wired returns (uint256) {
        return (computeRegistry.getProviderTotalCompute(provider) + computeUnits) * stakeManager.getStakeMinimum();
    }

    /// @notice Stake the provider may reclaim now: stake above `calculateMinimumStake(provider, 0)`.
    function getReclaimableStake(address provider) public view wired returns (uint256) {
        uint256 stake = stakeManager.getStake(provider);
        uint256 required = calculateMinimumStake(provider, 0);
        return stake > required ? stake - required : 0;
    }

    /// @notice The caps and period slashing works under (all zero until the federator sets them).
    function getSlashLimits() external view returns (SlashLimits memory) {
        return _slashLimits;
    }

    /// @notice The most one `slash(provider, ...)` may ask for now: the per-call cap, bounded by what is left
    /// of the provider's and the network's period caps (0 while no treasury is set).
    function getSlashAllowance(address provider) external view returns (uint256 allowance) {
        if (treasury == address(0)) return 0;
        SlashLimits memory limits = _slashLimits;
        allowance = limits.perCall;
        uint256 left = _leftAt(_providerSlashWindows[provider], limits.perProviderPerPeriod, limits.period);
        if (left < allowance) allowance = left;
        left = _leftAt(_networkSlashWindow, limits.perNetworkPerPeriod, limits.period);
        if (left < allowance) allowance = left;
    }

    /// @notice The provider's current slash window (start 0: none opened yet; it may have ended).
    function getSlashWindow(address provider) external view returns (SlashWindow memory) {
        return _providerSlashWindows[provider];
    }

    /// @notice The EIP-712 digest a node key signs to prove ownership (see the contract notice).
    function hashNodeKey(address provider, address node, uint256 nonce) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(NODE_KEY_TYPEHASH, provider, node, nonce)));
    }

    /// @notice The EIP-712 domain separator for the current chain.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ internals

    function _register(uint256 stake) private {
        address provider = msg.sender;
        uint256 required = stakeManager.getStakeMinimum();
        if (stake < required) revert StakeBelowMinimum(stake, required);
        if (stake == 0) revert ZeroAmount();
        computeRegistry.register(provider); // reverts ProviderAlreadyRegistered
        _pullStake(provider, stake);
        emit ProviderRegistered(provider, stake);
    }

    /// A window that has ended (or never opened) is reopened now with nothing used; one still open is kept.
    function _openWindow(SlashWindow storage window, uint256 period) private returns (SlashWindow storage) {
        if (window.start == 0 || block.timestamp >= window.start + period) {
            window.start = block.timestamp;
            window.used = 0;
        }
        return window;
    }

    function _left(SlashWindow storage window, uint256 cap) private view returns (uint256) {
        return cap > window.used ? cap - window.used : 0;
    }

    /// `_left` as it would be after `_openWindow`, without writing.
    function _leftAt(SlashWindow storage window, uint256 cap, uint256 period) private view returns (uint256) {
        bool ended = window.start == 0 || block.timestamp >= window.start + period;
        uint256 used = ended ? 0 : window.used;
        return cap > used ? cap - used : 0;
    }

    function _pullStake(address provider, uint256 amount) private {
        IERC20(aiToken).safeTransferFrom(provider, address(stakeManager), amount);
        stakeManager.stake(provider, amount);
    }
}
