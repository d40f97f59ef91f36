"""Distribution protos ⇄ domain: settings, levels, distributors and the referral an order keeps."""
from __future__ import annotations

from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2

from services.member.domain import distribution as rules
from services.member.domain.distribution import Credit, DistributionSettings, Distributor, DistributorLevel
from siyu_kit.protos import timestamp

BINDING_RULE = {rules.FIRST_WINS: member_pb2.DISTRIBUTOR_BINDING_RULE_FIRST_WINS,
                rules.LATEST_WINS: member_pb2.DISTRIBUTOR_BINDING_RULE_LATEST_WINS}
GUIDE_RULE = {rules.BINDING_WINS: member_pb2.GUIDE_BINDING_RULE_BINDING_WINS,
              rules.LAST_SHARE_WINS: member_pb2.GUIDE_BINDING_RULE_LAST_SHARE_WINS}
STATE = {rules.PENDING: member_pb2.DISTRIBUTOR_STATE_PENDING, rules.ACTIVE: member_pb2.DISTRIBUTOR_STATE_ACTIVE,
         rules.REJECTED: member_pb2.DISTRIBUTOR_STATE_REJECTED, rules.DISABLED: member_pb2.DISTRIBUTOR_STATE_DISABLED}
TEAM_KIND = {"CUSTOMER": member_pb2.TEAM_MEMBER_KIND_CUSTOMER,
             "DISTRIBUTOR": member_pb2.TEAM_MEMBER_KIND_DISTRIBUTOR}


def _back(table: dict, number: int) -> str:
    return next((name for name, n in table.items() if n == number), "")


def state_of(number: int) -> str:
    """A state filter: "" for unspecified."""
    return _back(STATE, number)


def team_kind_of(number: int) -> str:
    return _back(TEAM_KIND, number)


def settings_proto(s: DistributionSettings, version: int) -> member_pb2.DistributionSettings:
    return member_pb2.DistributionSettings(
        enabled=s.enabled, levels=s.levels, level1_rate_bp=s.level1_rate_bp, level2_rate_bp=s.level2_rate_bp,
        binding_days=s.binding_days, binding_rule=BINDING_RULE.get(s.binding_rule, 0),
        auto_distributor_threshold=s.auto_threshold, guide_binding_rule=GUIDE_RULE.get(s.guide_rule, 0),
        guide_rate_bp=s.guide_rate_bp, version=version)


def settings_of(p: member_pb2.DistributionSettings) -> DistributionSettings:
    """The settings asked for; unspecified rules are the defaults, an unknown number is
    left for the domain's check to name."""
    binding = _back(BINDING_RULE, p.binding_rule) if p.binding_rule else rules.FIRST_WINS
    guide = _back(GUIDE_RULE, p.guide_binding_rule) if p.guide_binding_rule else rules.BINDING_WINS
    return DistributionSettings(enabled=p.enabled, levels=p.levels, level1_rate_bp=p.level1_rate_bp,
                                level2_rate_bp=p.level2_rate_bp, binding_days=p.binding_days, binding_rule=binding,
                                auto_threshold=p.auto_distributor_threshold, guide_rule=guide,
                                guide_rate_bp=p.guide_rate_bp)


def level_proto(level: DistributorLevel) -> member_pb2.DistributorLevel:
    return member_pb2.DistributorLevel(level_id=level.id, name=level.name, level1_rate_bp=level.level1_rate_bp,
                                       level2_rate_bp=level.level2_rate_bp, version=level.version)


def distributor_proto(d: Distributor, rates: tuple[int, int]) -> member_pb2.Distributor:
    p = member_pb2.Distributor(member_id=d.member_id, state=STATE.get(d.state, 0), level_id=d.level_id,
                               level1_rate_bp=rates[0], level2_rate_bp=rates[1], upline_id=d.upline_id,
                               apply_reason=d.apply_reason, reject_reason=d.reject_reason, automatic=d.automatic,
                               version=d.version)
    if d.applied_at:
        p.applied_at.CopyFrom(timestamp(d.applied_at))
    if d.activated_at:
        p.activated_at.CopyFrom(timestamp(d.activated_at))
    if d.updated_at:
        p.updated_at.CopyFrom(timestamp(d.updated_at))
    return p


def referral_proto(c: Credit) -> common_pb2.Referral:
    return common_pb2.Referral(distributor_id=c.distributor_id, distributor_rate_bp=c.distributor_rate_bp,
                               upline_distributor_id=c.upline_distributor_id, upline_rate_bp=c.upline_rate_bp,
                               guide_id=c.guide_id, guide_rate_bp=c.guide_rate_bp, guide_store=c.guide_store,
                               group_buy_commission=c.group_buy_commission)
